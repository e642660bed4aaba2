/* util.c: errors, allocation, the growable buffer, encodings, clocks and
 * whole-file helpers. Everything here is small and dependency-free; the
 * allocation wrappers abort on exhaustion because every size reaching them
 * has already been bounded by a limit from limits.h. */
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base.h"

static const char *const dcr__err_text[] = {
#define DCR__ERR_TEXT(name, msg) msg,
	DCR_ERRNO_MAP(DCR__ERR_TEXT)
#undef DCR__ERR_TEXT
};
static const char *const dcr__err_name[] = {
#define DCR__ERR_NAME(name, msg) #name,
	DCR_ERRNO_MAP(DCR__ERR_NAME)
#undef DCR__ERR_NAME
};

const char *dcr_strerror(int code)
{
	if (code > DCR__ERR_BASE && code < DCR__ERR_END)
		return dcr__err_text[code - DCR__ERR_BASE - 1];
	if (code == 0)
		return "success";
	if (code < 0 && code > -4096)
		return strerror(-code);
	return "unknown error";
}

const char *dcr_errname(int code)
{
	if (code > DCR__ERR_BASE && code < DCR__ERR_END)
		return dcr__err_name[code - DCR__ERR_BASE - 1];
	return "ERRNO";
}

int dcr_err_set(dcr_err *err, int code, const char *fmt, ...)
{
	if (err == NULL)
		return code;
	err->code = code;
	if (fmt == NULL) {
		snprintf(err->msg, sizeof err->msg, "%s", dcr_strerror(code));
	} else {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof err->msg, fmt, ap);
		va_end(ap);
	}
	return code;
}

void dcr_err_prefix(dcr_err *err, const char *fmt, ...)
{
	char pre[DCR_ERR_MSG_BYTES], old[DCR_ERR_MSG_BYTES];
	va_list ap;
	if (err == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(pre, sizeof pre, fmt, ap);
	va_end(ap);
	memcpy(old, err->msg, sizeof old);
	size_t pn = strnlen(pre, sizeof pre), on = strnlen(old, sizeof old);
	size_t cap = sizeof err->msg - 1, o = 0;
	for (size_t i = 0; i < pn && o < cap; i++)
		err->msg[o++] = pre[i];
	for (size_t i = 0; i < 2 && o < cap; i++)
		err->msg[o++] = ": "[i];
	for (size_t i = 0; i < on && o < cap; i++)
		err->msg[o++] = old[i];
	err->msg[o] = '\0';
}

void dcr_err_clear(dcr_err *err)
{
	if (err) {
		err->code = 0;
		err->msg[0] = '\0';
	}
}

void dcr__assert_fail(const char *expr, const char *file, int line)
{
	fprintf(stderr, "dcr: assertion failed: %s (%s:%d)\n", expr, file, line);
	abort();
}

static void *oom(size_t n)
{
	fprintf(stderr, "dcr: out of memory allocating %zu bytes\n", n);
	abort();
}

void *dcr_malloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	return p ? p : oom(n);
}

void *dcr_malloc_aligned(size_t align, size_t n)
{
	void *p = NULL;
	return posix_memalign(&p, align, n ? n : 1) == 0 ? p : oom(n);
}

void *dcr_calloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	return p ? p : oom(n * size);
}

void *dcr_realloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	return q ? q : oom(n);
}

char *dcr_strdup(const char *s)
{
	return dcr_strndup(s, strlen(s));
}

char *dcr_strndup(const char *s, size_t n)
{
	char *p = dcr_malloc(n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *dcr_asprintf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	DCR_ASSERT(n >= 0);
	char *p = dcr_malloc((size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(p, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return p;
}

/* ---- buffer ---- */

void dcr_buf_init(dcr_buf *b)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

void dcr_buf_release(dcr_buf *b)
{
	free(b->data);
	dcr_buf_init(b);
}

int dcr_mem_read(void *ctx, void *buf, size_t cap)
{
	dcr_mem *m = ctx;
	size_t n = m->n - m->off;

	if (n > cap)
		n = cap;
	if (n > INT32_MAX)
		n = INT32_MAX;
	if (n)
		memcpy(buf, m->p + m->off, n);
	m->off += n;
	return (int)n;
}

void dcr_buf_reset(dcr_buf *b)
{
	b->len = 0;
}

void dcr_buf_reserve(dcr_buf *b, size_t extra)
{
	DCR_ASSERT(b->len + extra >= b->len);
	size_t need = b->len + extra + 1; /* room for dcr_buf_cstr's NUL */
	if (need <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap = cap * 2 > cap ? cap * 2 : need;
	b->data = dcr_realloc(b->data, cap);
	b->cap = cap;
}

void dcr_buf_append(dcr_buf *b, const void *p, size_t n)
{
	if (n == 0)
		return;
	dcr_buf_reserve(b, n);
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

void dcr_buf_append_u8(dcr_buf *b, uint8_t v)
{
	dcr_buf_reserve(b, 1);
	b->data[b->len++] = v;
}

void dcr_buf_append_str(dcr_buf *b, const char *s)
{
	dcr_buf_append(b, s, strlen(s));
}

void dcr_buf_printf(dcr_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	DCR_ASSERT(n >= 0);
	dcr_buf_reserve(b, (size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

char *dcr_buf_cstr(dcr_buf *b)
{
	dcr_buf_reserve(b, 1);
	b->data[b->len] = '\0';
	return (char *)b->data;
}

/* ---- encodings ---- */

void dcr_json_str(dcr_buf *b, const char *s, size_t n)
{
	dcr_buf_reserve(b, n + 2);
	dcr_buf_append_u8(b, '"');
	size_t run = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c != '"' && c != '\\' && c != 0x7f)
			continue;
		dcr_buf_append(b, s + run, i - run);
		run = i + 1;
		switch (c) {
		case '"':
			dcr_buf_append_str(b, "\\\"");
			break;
		case '\\':
			dcr_buf_append_str(b, "\\\\");
			break;
		case '\n':
			dcr_buf_append_str(b, "\\n");
			break;
		case '\r':
			dcr_buf_append_str(b, "\\r");
			break;
		case '\t':
			dcr_buf_append_str(b, "\\t");
			break;
		default:
			dcr_buf_printf(b, "\\u%04x", c);
		}
	}
	dcr_buf_append(b, s + run, n - run);
	dcr_buf_append_u8(b, '"');
}


int dcr_ascii_ncasecmp(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
		x = (unsigned char)(x >= 'A' && x <= 'Z' ? x + 32 : x);
		y = (unsigned char)(y >= 'A' && y <= 'Z' ? y + 32 : y);
		if (x != y)
			return x < y ? -1 : 1;
		if (!x)
			return 0;
	}
	return 0;
}

void dcr_hex_encode(const uint8_t *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = '\0';
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int dcr_hex_decode(const char *s, size_t slen, uint8_t *out, size_t n)
{
	if (slen != 2 * n)
		return DCR_EFORMAT;
	for (size_t i = 0; i < n; i++) {
		int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return DCR_EFORMAT;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *dcr_b64_encode(const uint8_t *p, size_t n)
{
	char *out = dcr_malloc(4 * ((n + 2) / 3) + 1);
	size_t o = 0;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)p[i + 1] << 8;
		if (i + 2 < n)
			v |= p[i + 2];
		out[o++] = b64chars[v >> 18 & 63];
		out[o++] = b64chars[v >> 12 & 63];
		out[o++] = i + 1 < n ? b64chars[v >> 6 & 63] : '=';
		out[o++] = i + 2 < n ? b64chars[v & 63] : '=';
	}
	out[o] = '\0';
	return out;
}

static int b64val(char c)
{
	const char *q = c ? strchr(b64chars, c) : NULL;
	return q ? (int)(q - b64chars) : -1;
}

int dcr_b64_decode(const char *s, size_t slen, uint8_t *out, size_t out_cap)
{
	if (slen % 4 != 0)
		return DCR_EFORMAT;
	size_t o = 0;
	for (size_t i = 0; i < slen; i += 4) {
		int v[4], pad = 0;
		for (int j = 0; j < 4; j++) {
			if (s[i + j] == '=' && i + 4 == slen && j >= 2) {
				v[j] = 0;
				pad++;
			} else if (pad) {
				return DCR_EFORMAT; /* data after padding */
			} else if ((v[j] = b64val(s[i + j])) < 0) {
				return DCR_EFORMAT;
			}
		}
		uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 |
			     (uint32_t)v[3];
		/* Strict: unused bits of the last group must be zero. */
		if ((pad == 1 && (w & 0xff)) || (pad == 2 && (w & 0xffff)))
			return DCR_EFORMAT;
		size_t k = 3 - (size_t)pad;
		if (o + k > out_cap)
			return DCR_ELIMIT;
		out[o++] = (uint8_t)(w >> 16);
		if (k > 1)
			out[o++] = (uint8_t)(w >> 8);
		if (k > 2)
			out[o++] = (uint8_t)w;
	}
	return (int)o;
}

void dcr_put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

uint64_t dcr_get_be64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

void dcr_put_be32(uint8_t *p, uint32_t v)
{
	for (int i = 3; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

uint32_t dcr_get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

uint64_t dcr_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t dcr_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- files ---- */

int dcr_read_file(const char *path, size_t max_bytes, dcr_buf *out, dcr_err *err)
{
	int rc = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return dcr_err_set(err, -errno, "%s: %s", path, strerror(errno));
	for (;;) {
		dcr_buf_reserve(out, 65536);
		ssize_t n = read(fd, out->data + out->len, out->cap - out->len - 1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = dcr_err_set(err, -errno, "%s: %s", path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		out->len += (size_t)n;
		if (out->len > max_bytes) {
			rc = dcr_err_set(err, DCR_ELIMIT, "%s: larger than %zu bytes", path,
					 max_bytes);
			goto out;
		}
	}
out:
	close(fd);
	return rc;
}

int dcr_write_file_atomic(const char *path, const void *p, size_t n, int mode, dcr_err *err)
{
	int rc = 0;
	char *tmp = dcr_asprintf("%s.tmp.%ld", path, (long)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0) {
		rc = dcr_err_set(err, -errno, "%s: %s", tmp, strerror(errno));
		goto out;
	}
	const uint8_t *q = p;
	while (n > 0) {
		ssize_t w = write(fd, q, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			rc = dcr_err_set(err, -errno, "%s: %s", tmp, strerror(errno));
			goto out_close;
		}
		q += w;
		n -= (size_t)w;
	}
	if (fchmod(fd, (mode_t)mode) != 0 || fsync(fd) != 0) {
		rc = dcr_err_set(err, -errno, "%s: %s", tmp, strerror(errno));
		goto out_close;
	}
	if (rename(tmp, path) != 0)
		rc = dcr_err_set(err, -errno, "%s: %s", path, strerror(errno));
out_close:
	close(fd);
	if (rc != 0)
		unlink(tmp);
out:
	free(tmp);
	return rc;
}

bool dcr_dir_empty(const char *path)
{
	DIR *dp = opendir(path);
	struct dirent *e;
	bool empty = true;

	if (!dp)
		return false;
	while (empty && (e = readdir(dp)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			empty = false;
	closedir(dp);
	return empty;
}

static int mkdir_parents(char *path, mode_t mode)
{
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, mode) < 0 && errno != EEXIST) {
			*p = '/';
			return -errno;
		}
		*p = '/';
	}
	if (mkdir(path, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

char *dcr_config_dir(bool create, dcr_err *err)
{
	const char *env = getenv("DCR_CONFIG_DIR");
	char *dir;
	int rc;

	if (env && *env)
		dir = dcr_strdup(env);
	else if ((env = getenv("XDG_CONFIG_HOME")) && *env == '/')
		dir = dcr_asprintf("%s/dcr", env);
	else if ((env = getenv("HOME")) && *env)
		dir = dcr_asprintf("%s/.config/dcr", env);
	else {
		dcr_err_set(err, DCR_EINVALID,
		            "no configuration directory: set DCR_CONFIG_DIR or HOME");
		return NULL;
	}
	if (create && (rc = mkdir_parents(dir, 0700)) < 0) {
		dcr_err_set(err, rc, "cannot create %s: %s", dir, strerror(-rc));
		free(dir);
		return NULL;
	}
	return dir;
}
