// execloop N PROG: run PROG (no arguments) N times, one after the other (posix_spawn, which
// glibc does with clone(CLONE_VM|CLONE_VFORK) + execve, then waitpid), and print
// "execs N fails F us_per_exec X". A spawn that fails (an exec denied: EPERM) or a child that
// does not exit 0 counts as a failure.
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;

int main(int argc, char **argv) {
	if (argc != 3) {
		fprintf(stderr, "usage: execloop N PROG\n");
		return 2;
	}
	int n = atoi(argv[1]), fails = 0;
	char *av[] = {argv[2], NULL};
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (int i = 0; i < n; i++) {
		pid_t pid;
		if (posix_spawn(&pid, argv[2], NULL, NULL, av, environ) != 0) {
			fails++;
			continue;
		}
		int st;
		if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
			fails++;
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	double us = (b.tv_sec - a.tv_sec) * 1e6 + (b.tv_nsec - a.tv_nsec) / 1e3;
	printf("execs %d fails %d us_per_exec %.2f\n", n, fails, us / n);
	return fails ? 1 : 0;
}
