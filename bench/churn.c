// bench/churn.c: a full-speed churn of files in one directory, for bench/churn.sh. Each file
// is created, written (one byte), closed, renamed and removed: six directory-entry and
// content events per file. Prints "files N seconds S files_per_s R".
// Usage: churn DIR N
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
	if (argc != 3) {
		fprintf(stderr, "usage: churn DIR N\n");
		return 2;
	}
	const char *dir = argv[1];
	long n = atol(argv[2]);
	char f[4096], g[4096];
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (long i = 0; i < n; i++) {
		snprintf(f, sizeof f, "%s/f%ld", dir, i);
		snprintf(g, sizeof g, "%s/g%ld", dir, i);
		int fd = open(f, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (fd < 0 || write(fd, "x", 1) != 1 || close(fd) != 0 || rename(f, g) != 0 || unlink(g) != 0) {
			perror(f);
			return 1;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	double s = (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
	printf("files %ld seconds %.4f files_per_s %.0f\n", n, s, n / s);
	return 0;
}
