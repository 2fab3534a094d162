// execmix CYCLES BURST BASE PROG...: run, CYCLES times, a block of BURST execs of each PROG in
// turn, each block after a block of BURST execs of BASE (and one more BASE block at the end), so
// that every PROG block has a BASE block right before and right after it; time every exec
// (posix_spawn, which glibc does with clone(CLONE_VM|CLONE_VFORK) + execve, then waitpid; no
// arguments) and print one line per exec: "CYCLE BLOCK TARGET N US", BLOCK counting the blocks
// of the run from 0, TARGET the index of the PROG or -1 for BASE. The order of the PROG blocks
// follows a Williams design (a Latin square balanced for the block before): over every n
// cycles (2n when the number of PROGs n is odd) each PROG comes first as often as any other
// and follows each other PROG equally often, so that what one listener leaves behind (its
// threads still running, caches) weighs on every other alike. (Until 2026-12-05 13:00 the
// order rotated and reversed every other cycle, which is balanced for 3 PROGs but not for 4:
// with bench/exec.sh's REF= the tree's guard never followed execref and the REF's guard
// never followed fapolicyd, and two identical guards differed by 2.4x in one run.)
// bench/exec.sh gives one PROG per listener and BASE with none, each a copy of the same binary
// on a ramfs of its own, reached through /proc/PID/root of a process in that target's mount
// namespace: all the execs are run by this one process, and a listener's block is compared
// with the two no-listener blocks around it, a fraction of a second away. Within a block a
// listener sees a steady exec loop, and what it does after answering an exec (its other
// threads) overlaps its own next exec, as in a steady loop: only the last exec of the block
// lends it to a no-listener exec.
// A spawn that fails (an exec denied: EPERM) or a child that does not exit 0 is reported on
// standard error and ends the run with status 1.
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;

static double now_us(void) {
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static int block;

// run execs prog n times, printing each exec's time; 0, or -1 (reported) when one failed.
static int run(int c, int target, char *prog, int n) {
	char *av[] = {prog, NULL};
	for (int i = 0; i < n; i++) {
		pid_t pid;
		int st;
		double t0 = now_us();
		int err = posix_spawn(&pid, prog, NULL, NULL, av, environ);
		if (err != 0) {
			fprintf(stderr, "execmix: spawn %s: error %d\n", prog, err);
			return -1;
		}
		if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			fprintf(stderr, "execmix: %s did not exit 0\n", prog);
			return -1;
		}
		printf("%d %d %d %d %.2f\n", c, block, target, i, now_us() - t0);
	}
	block++;
	return 0;
}

// williams returns the j-th PROG of cycle c's order among n: row c of a Williams design. Its
// first row is 0, 1, n-1, 2, n-2, ...; row r adds r (mod n); for odd n, rows n..2n-1 are rows
// 0..n-1 reversed. In the n (even) or 2n (odd) rows every PROG is preceded by every other
// exactly once (even) or twice (odd), and stands at each position equally often.
static int williams(int n, int c, int j) {
	int rows = n % 2 ? 2 * n : n, r = c % rows;
	if (r >= n) { // odd n: the reversed rows
		r -= n;
		j = n - 1 - j;
	}
	int first = j == 0 ? 0 : (j % 2 ? (j + 1) / 2 : n - j / 2);
	return (first + r) % n;
}

int main(int argc, char **argv) {
	if (argc < 5) {
		fprintf(stderr, "usage: execmix CYCLES BURST BASE PROG...\n");
		return 2;
	}
	int cycles = atoi(argv[1]), burst = atoi(argv[2]), n = argc - 4;
	char *base = argv[3], **progs = argv + 4;
	if (cycles <= 0 || burst <= 0) {
		fprintf(stderr, "execmix: CYCLES and BURST must be positive\n");
		return 2;
	}
	for (int c = 0; c < cycles; c++) {
		for (int j = 0; j < n; j++) {
			int k = williams(n, c, j);
			if (run(c, -1, base, burst) < 0 || run(c, k, progs[k], burst) < 0)
				return 1;
		}
	}
	return run(cycles - 1, -1, base, burst) < 0 ? 1 : 0;
}
