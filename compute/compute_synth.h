/* compute_synth.h: synthetic tables (cmp_synth.c; docs/privacy.md,
 * "Synthetic data").
 *
 * A synthetic run reads a table (its CSV with a header row, and its
 * schema) and writes a table with the same columns. A masked column gets
 * random values of its format, generated from the format and the column's
 * type only: its cells are never parsed. Every other column is synthesised
 * by an MST-class mechanism (McKenna, Miklau, Sheldon, "Winning the NIST
 * Contest", 2021) under zero-concentrated differential privacy: noisy
 * 1-way marginals, a spanning tree of 2-way marginals chosen with the
 * exponential mechanism, noisy 2-way marginals of the tree's edges, a tree
 * model fitted to the measurements, and rows sampled from the root down.
 * All noise comes from the exact discrete samplers of cmp_noise.c. */
#ifndef DCR_COMPUTE_SYNTH_H
#define DCR_COMPUTE_SYNTH_H

#include "compute.h"

/* Mask formats; each fits one type (cmp_mask_fits). */
enum cmp_mask {
	CMP_MASK_NONE,      /* not masked: synthesised */
	CMP_MASK_STRING,    /* 12 random letters and digits */
	CMP_MASK_NUMBER,    /* integer or float column: uniform in [0, 10^6) */
	CMP_MASK_NAME,      /* "First Last" from fixed lists */
	CMP_MASK_ADDRESS,   /* "12 Elm Street" */
	CMP_MASK_POSTCODE,  /* five digits */
	CMP_MASK_PHONE,     /* "+1 2NN-555-NNNN" */
	CMP_MASK_SSN,       /* "9NN-NN-NNNN": area 900-999, never issued as an SSN */
	CMP_MASK_EMAIL,     /* "x.<10 random>@example.com" */
	CMP_MASK_DATE,      /* YYYY-MM-DD, 1950-01-01 .. 2029-12-31 */
	CMP_MASK_TIMESTAMP, /* YYYY-MM-DDTHH:MM:SSZ in the same years */
	CMP_MASK_IBAN,      /* German IBAN, DE + 2 valid check digits + 18 digits */
	CMP_MASK_COUNT
};
const char *cmp_mask_name(enum cmp_mask m); /* "none", "string", "number", ..., "iban" */
bool cmp_mask_parse(const char *s, size_t n, enum cmp_mask *m);
/* Number masks fit integer and float columns, every other mask string
 * columns. */
bool cmp_mask_fits(enum cmp_mask m, enum cmp_type t);

/* Per column of the schema. */
typedef struct cmp_synth_col {
	enum cmp_mask mask;
	/* Numeric columns: bounds (lo < hi) from the definition; without
	 * them they are estimated privately (a share of the budget). */
	bool has_bounds;
	double lo, hi;
	unsigned bins; /* numeric: bins of [lo, hi]; 0: DCR_SYNTH_BINS_DEFAULT */
} cmp_synth_col;

/* Bench only (refused unless rng is a test generator): the baselines. */
enum cmp__synth_mode {
	CMP_SYNTH_MST = 0,
	CMP__SYNTH_INDEPENDENT, /* noisy 1-way marginals only, the whole budget */
	CMP__SYNTH_CHOW_LIU     /* NOT PRIVATE: exact marginals, maximum mutual information tree */
};

typedef struct cmp_synth {
	cmp_schema schema;          /* the input's columns, in CSV order */
	const cmp_synth_col *cols;  /* schema.ncols entries; NULL: none masked, no bounds */
	uint64_t epsilon;           /* millionths, 1 .. DCR_RM_EPSILON_MAX * 10^6 */
	uint64_t rows;              /* rows to write; 0: the noisy row count */
	cmp_rng *rng;               /* NULL: the CSPRNG (dcrd); tests pass a seeded one */
	enum cmp__synth_mode mode;  /* CMP_SYNTH_MST except in the bench */
	const char *label;          /* names the input in errors ("bank") */
} cmp_synth;

/* The accounting (docs/privacy.md): rho of zCDP from (epsilon, delta)
 * with delta = DCR_SYNTH_DELTA, half of it for the conversion:
 * rho = (sqrt(ln(2/delta) + eps) - sqrt(ln(2/delta)))^2. */
double cmp_synth_rho(double epsilon);

/* Checks the settings against the schema (masks fit types, bounds,
 * bins, epsilon, rows); deterministic, no data. */
int cmp_synth_check(const cmp_synth *s, dcr_err *err);

/* Reads the CSV (header row first, names as in the schema) through read
 * and writes the synthetic table into res (csv with its header row, the
 * table image named "result", the schema: the input's names and types,
 * no formats) and the privacy and quality report (JSON, docs/privacy.md)
 * into report. Fewer than DCR_SYNTH_ROWS_MIN rows: DCR_EINVALID. Error
 * messages name lines and columns, never a value. res and report are
 * replaced on success and unchanged on failure. */
int cmp_synth_run(const cmp_synth *s, cmp_read_fn read, void *ctx, cmp_result *res,
                  dcr_buf *report, dcr_err *err);

/* TEST ONLY: the exponential mechanism of the tree selection: index i
 * of score[0..n) with probability proportional to
 * exp(score[i] * half / DCR_SYNTH_EM_SCALE) (half = eps/2 of the round in
 * units of 2^-24), exactly. */
#define DCR_SYNTH_EM_SCALE (1u << 24)
size_t cmp__synth_em_pick(cmp_rng *r, const uint64_t *score, size_t n, uint64_t half);

/* TEST ONLY: one masked value of format m for type t. */
void cmp__synth_mask_value(cmp_rng *r, enum cmp_mask m, enum cmp_type t, dcr_buf *out);

#endif
