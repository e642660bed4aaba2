/* replay_main.c: runs a fuzz target over a stored corpus, as a normal test.
 *
 * Usage: fuzz_replay_<name> PATH...; each PATH is a corpus directory (every
 * regular file in it, in name order) or a single file. Each input is
 * copied into a buffer of exactly its size, so an out-of-bounds read shows
 * under ASan as it would under libFuzzer. The target aborts on a failed
 * check; replay itself fails if a path cannot be read or no input was run
 * (an empty or missing corpus must not pass silently). */
#include <dirent.h>
#include <sys/stat.h>

#include "fuzz.h"

static int run_file(const char *path, size_t *count)
{
	dcr_buf b;
	dcr_err err;
	uint8_t *copy;
	int rc;

	dcr_buf_init(&b);
	rc = dcr_read_file(path, 64u * 1024 * 1024, &b, &err);
	if (rc != 0) {
		fprintf(stderr, "replay: %s: %s\n", path, err.msg);
		goto out;
	}
	copy = dcr_malloc(b.len ? b.len : 1);
	if (b.len)
		memcpy(copy, b.data, b.len);
	(void)LLVMFuzzerTestOneInput(copy, b.len);
	free(copy);
	(*count)++;
out:
	dcr_buf_release(&b);
	return rc;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int run_dir(const char *dir, size_t *count)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char **names = NULL;
	size_t n = 0, cap = 0, i;
	int rc = 0;

	if (!d) {
		fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
		return -errno;
	}
	while ((e = readdir(d)) != NULL) {
		char *path;
		struct stat st;

		if (e->d_name[0] == '.')
			continue;
		path = dcr_asprintf("%s/%s", dir, e->d_name);
		if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
			free(path);
			continue;
		}
		if (n == cap) {
			cap = cap ? 2 * cap : 64;
			names = dcr_realloc(names, cap * sizeof *names);
		}
		names[n++] = path;
	}
	closedir(d);
	if (n)
		qsort(names, n, sizeof *names, name_cmp);
	for (i = 0; i < n; i++) {
		if (rc == 0)
			rc = run_file(names[i], count);
		free(names[i]);
	}
	free(names);
	return rc;
}

int main(int argc, char **argv)
{
	size_t count = 0;
	int i, rc = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: %s CORPUS_DIR_OR_FILE...\n", argv[0]);
		return 2;
	}
	for (i = 1; i < argc && rc == 0; i++) {
		struct stat st;

		if (stat(argv[i], &st) != 0) {
			fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
			return 1;
		}
		rc = S_ISDIR(st.st_mode) ? run_dir(argv[i], &count) : run_file(argv[i], &count);
	}
	if (rc != 0)
		return 1;
	if (count == 0) {
		fprintf(stderr, "replay: no inputs found\n");
		return 1;
	}
	printf("replay: %zu inputs ran without a failure\n", count);
	return 0;
}
