/* bench_touch.c: what this machine charges for memory a process has not
 * touched before (docs/benchmarks.md, "Data in to first result", fourth
 * pass).
 *
 *   bench_touch [--mb N] [--rounds R]
 *
 * Maps N MiB (default 1024) of anonymous memory, writes every byte (the
 * first touch: the kernel faults each page in and zeroes it, and a virtual
 * machine's host may have to back it too), writes it again (no fault), and
 * unmaps it; R rounds (default 3), with 4 KiB pages and then with
 * transparent huge pages asked for (MADV_HUGEPAGE). A dcrd that builds a
 * 10M-row table touches about 2 GB it did not hold before, and the page
 * cache takes as much again for the blobs it writes: this is the price of
 * each GB. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "../base/base.h"
#include "bench_harness.h"

int main(int argc, char **argv)
{
	unsigned long long mb = 1024, rounds = 3;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--mb") && i + 1 < argc)
			mb = strtoull(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
			rounds = strtoull(argv[++i], NULL, 10);
		else {
			fprintf(stderr, "usage: bench_touch [--mb N] [--rounds R]\n");
			return 2;
		}
	}
	if (!mb || mb > (1ull << 20) || !rounds || rounds > 100) {
		fprintf(stderr, "bench_touch: --mb 1 to 1048576, --rounds 1 to 100\n");
		return 2;
	}
	size_t n = (size_t)mb << 20;
	for (int huge = 0; huge < 2; huge++)
		for (unsigned long long r = 0; r < rounds; r++) {
			uint8_t *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			                  -1, 0);
			if (p == MAP_FAILED) {
				perror("bench_touch: mmap");
				return 1;
			}
			if (huge)
				(void)madvise(p, n, MADV_HUGEPAGE);
			double t0 = bench_now_s();
			memset(p, 1, n);
			double t1 = bench_now_s();
			memset(p, 2, n);
			double t2 = bench_now_s();
			printf("%s pages, round %llu: first touch %.3f s (%.2f s/GB), again %.3f s\n",
			       huge ? "huge" : "4 KiB", r + 1, t1 - t0, (t1 - t0) / ((double)n / 1e9),
			       t2 - t1);
			munmap(p, n);
		}
	return 0;
}
