/* cmp_noise.c: exact discrete noise for differential privacy.
 *
 * The samplers of Canonne, Kamath and Steinke, "The Discrete Gaussian for
 * Differential Privacy" (NeurIPS 2020), Algorithms 1-3: Bernoulli(exp(-g))
 * for a rational g, then the discrete Laplace Lap_Z(t/s) with
 * P(x) proportional to exp(-|x| s/t), then the discrete Gaussian N_Z(0, sigma^2)
 * for a rational sigma^2 by rejection from a discrete Laplace. Every step
 * is integer arithmetic on uniformly random integers: there is no
 * floating-point log or exp anywhere, so the output distribution is
 * exactly the stated pmf (up to the randomness source), which is what the
 * privacy proofs assume. Floating-point samplers (-b*log(u)) leak through
 * the gaps and rounding of doubles (Mironov 2012); these do not.
 *
 * Randomness: cmp_rng_init reads OpenSSL's CSPRNG (dcr_random, RAND_bytes).
 * A seeded deterministic generator exists only for tests
 * (cmp__rng_init_test); dcrd never calls it, and tests/e2e/dp.sh checks that
 * two runs of the daemon on the same data draw different noise.
 *
 * Rationals are numerator/denominator in unsigned 128-bit integers; the
 * public entry points bound their parameters (DCR_NOISE_PARAM_MAX) so no
 * product below overflows. */
#include "compute_int.h"

typedef unsigned __int128 u128;

/* ---- randomness --------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

void cmp_rng_init(cmp_rng *r)
{
	memset(r, 0, sizeof *r);
	r->test = false;
	r->pos = sizeof r->buf / sizeof r->buf[0]; /* empty: the first draw fills it */
}

void cmp__rng_init_test(cmp_rng *r, uint64_t seed)
{
	memset(r, 0, sizeof *r);
	r->test = true;
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&seed);
}

void cmp_rng_release(cmp_rng *r)
{
	dcr_wipe(r, sizeof *r);
}

static uint64_t rng_u64(cmp_rng *r)
{
	uint64_t v;
	if (!r->test) {
		/* RAND_bytes once per 64 words, not per word */
		if (r->pos >= sizeof r->buf / sizeof r->buf[0]) {
			dcr_random(r->buf, sizeof r->buf);
			r->pos = 0;
		}
		v = r->buf[r->pos];
		r->buf[r->pos++] = 0;
		return v;
	}
	/* xoshiro256** (Blackman and Vigna), test only */
	uint64_t *s = r->s, res = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return res;
}

/* Uniform on [0, n), n >= 1, by rejection: exact. */
static u128 rng_below128(cmp_rng *r, u128 n)
{
	DCR_ASSERT(n > 0);
	if (n <= UINT64_MAX) {
		uint64_t m = (uint64_t)n, limit = UINT64_MAX - UINT64_MAX % m, v;
		do
			v = rng_u64(r);
		while (v >= limit);
		return v % m;
	}
	u128 max = ~(u128)0, limit = max - max % n, v;
	do
		v = ((u128)rng_u64(r) << 64) | rng_u64(r);
	while (v >= limit);
	return v % n;
}

uint64_t cmp_rng_below(cmp_rng *r, uint64_t n)
{
	return (uint64_t)rng_below128(r, n);
}

/* ---- Bernoulli ------------------------------------------------------------ */

/* Bernoulli(num/den), 0 <= num <= den. */
static bool bern(cmp_rng *r, u128 num, u128 den)
{
	DCR_ASSERT(den > 0 && num <= den);
	return rng_below128(r, den) < num;
}

/* Bernoulli(exp(-num/den)) for 0 <= num/den <= 1 (CKS Algorithm 1, first
 * case): K = 1; while Bernoulli(g/K) K++; return K odd. The probability of
 * stopping at an odd K is sum (-g)^j/j! = exp(-g). K stays tiny (it passes
 * k with probability g^k/k!); the assertion guards the product. */
static bool bern_exp_le1(cmp_rng *r, u128 num, u128 den)
{
	uint64_t k = 1;
	for (;;) {
		u128 dk;
		DCR_ASSERT(!__builtin_mul_overflow(den, (u128)k, &dk));
		if (!bern(r, num, dk))
			break;
		k++;
	}
	return k % 2 == 1;
}

/* Bernoulli(exp(-num/den)) for any num/den >= 0 (CKS Algorithm 1): floor(g)
 * independent Bernoulli(exp(-1)), then Bernoulli(exp(-frac(g))). The loop
 * stops at the first failure (probability 1 - 1/e each), so it is short
 * whatever g is. */
static bool bern_exp(cmp_rng *r, u128 num, u128 den)
{
	DCR_ASSERT(den > 0);
	u128 whole = num / den;
	for (u128 i = 0; i < whole; i++)
		if (!bern_exp_le1(r, 1, 1))
			return false;
	return bern_exp_le1(r, num % den, den);
}

bool cmp__noise_bern_exp(cmp_rng *r, uint64_t num, uint64_t den)
{
	return bern_exp(r, num, den);
}

/* ---- discrete Laplace --------------------------------------------------- */

static uint64_t gcd64(uint64_t a, uint64_t b)
{
	while (b) {
		uint64_t t = a % b;
		a = b;
		b = t;
	}
	return a;
}

/* Lap_Z(t/s): P(x) = (e^(s/t) - 1) / (e^(s/t) + 1) * exp(-|x| s/t)
 * (CKS Algorithm 2). U uniform on [0, t) accepted with probability
 * exp(-U/t) and V geometric (Bernoulli(exp(-1)) successes before the first
 * failure) give X = U + tV geometric with ratio exp(-1/t); floor(X/s) is
 * then geometric with ratio exp(-s/t); a random sign, rejecting "-0",
 * makes it two-sided. */
static int64_t dlaplace(cmp_rng *r, uint64_t s, uint64_t t)
{
	for (;;) {
		uint64_t u = cmp_rng_below(r, t);
		if (!bern_exp(r, u, t))
			continue;
		uint64_t v = 0;
		while (bern_exp_le1(r, 1, 1))
			v++;
		u128 x = (u128)u + (u128)t * v;
		u128 y = x / s;
		bool neg = cmp_rng_below(r, 2) == 1;
		if (neg && y == 0)
			continue;
		/* With t/s < 2^40, |y| > 2^62 has probability below
		 * exp(-2^22): far below anything a CSPRNG can produce. */
		DCR_ASSERT(y <= ((u128)1 << 62));
		return neg ? -(int64_t)y : (int64_t)y;
	}
}

int cmp_noise_dlaplace(cmp_rng *r, uint64_t s, uint64_t t, int64_t *out, dcr_err *err)
{
	if (s == 0 || t == 0 || s > DCR_NOISE_PARAM_MAX || t > DCR_NOISE_PARAM_MAX ||
	    t / s >= DCR_NOISE_SCALE_MAX)
		return dcr_err_set(err, DCR_EINVALID,
		                   "discrete Laplace scale %llu/%llu: both parts must be 1..%llu "
		                   "and the scale below %llu",
		                   (unsigned long long)t, (unsigned long long)s,
		                   (unsigned long long)DCR_NOISE_PARAM_MAX,
		                   (unsigned long long)DCR_NOISE_SCALE_MAX);
	uint64_t g = gcd64(s, t);
	*out = dlaplace(r, s / g, t / g);
	return 0;
}

/* ---- discrete Gaussian --------------------------------------------------- */

/* floor(sqrt(num/den)): the largest m with m^2 den <= num. */
static uint64_t isqrt_frac(uint64_t num, uint64_t den)
{
	uint64_t lo = 0, hi = (uint64_t)1 << 32;
	while (lo + 1 < hi) {
		uint64_t mid = lo + (hi - lo) / 2;
		if ((u128)mid * mid * den <= num)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

/* N_Z(0, sigma^2), sigma^2 = num/den (CKS Algorithm 3): t = floor(sigma)+1,
 * Y from Lap_Z(t), accepted with probability
 * exp(-(|Y| - sigma^2/t)^2 / (2 sigma^2)). In integers:
 * (|Y| - num/(den t))^2 / (2 num/den) = (|Y| den t - num)^2 / (2 num den t^2). */
int cmp_noise_dgauss(cmp_rng *r, uint64_t num, uint64_t den, int64_t *out, dcr_err *err)
{
	if (num == 0 || den == 0 || num > DCR_NOISE_SIGMA_NUM_MAX || den > DCR_NOISE_SIGMA_DEN_MAX)
		return dcr_err_set(err, DCR_EINVALID,
		                   "discrete Gaussian variance %llu/%llu: numerator 1..%llu, "
		                   "denominator 1..%llu",
		                   (unsigned long long)num, (unsigned long long)den,
		                   (unsigned long long)DCR_NOISE_SIGMA_NUM_MAX,
		                   (unsigned long long)DCR_NOISE_SIGMA_DEN_MAX);
	uint64_t g = gcd64(num, den);
	num /= g;
	den /= g;
	uint64_t t = isqrt_frac(num, den) + 1;
	/* Bounds: num < 2^40, den < 2^20, t <= 2^20 + 1: dt < 2^41,
	 * 2 num den t^2 < 2^103. */
	u128 dt = (u128)den * t, bden = 2 * (u128)num * den * t * t;
	for (;;) {
		int64_t y = dlaplace(r, 1, t);
		uint64_t ay = y < 0 ? (uint64_t)(-(y + 1)) + 1 : (uint64_t)y;
		/* |Y| den t - num, its square over bden. |Y| den t exceeds
		 * 2^63 only when |Y| > 2^22 t, where the acceptance
		 * probability is below exp(-2^40): reject it (the one
		 * inexactness, far below what the randomness can show). */
		if (ay > ((uint64_t)1 << 22) * t)
			continue;
		u128 a = (u128)ay * dt;
		u128 diff = a >= num ? a - num : num - a;
		/* diff < 2^22 t * 2^41 < 2^84: the square overflows; divide
		 * first: g = diff^2 / bden = (diff / bden) diff + (diff %
		 * bden) diff / bden, kept as one exact fraction when it
		 * fits. */
		u128 sq;
		if (diff >> 64 == 0 && !__builtin_mul_overflow(diff, diff, &sq)) {
			if (bern_exp(r, sq, bden)) {
				*out = y;
				return 0;
			}
			continue;
		}
		/* diff^2 does not fit 128 bits: diff >= 2^64, so the exponent
		 * is at least 2^128 / 2^103 = 2^25; accepting needs 2^25
		 * consecutive Bernoulli(1/e) successes: reject. */
		continue;
	}
}
