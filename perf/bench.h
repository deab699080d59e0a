/* Pieces stream-bench and gossip-bench share: the clock, sorting, the
 * machine they ran on, and the files the js side needs. Included by one
 * benchmark binary each (static functions). */
#ifndef WISP_PERF_BENCH_H
#define WISP_PERF_BENCH_H

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#define SEC(x) ((uint64_t)((x) * 1e9))

static inline uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* qsort order for doubles */
static inline int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* "64", "4K", "256M", "1G" (powers of two); 0 when it does not parse. */
static inline uint64_t parse_size(const char *s)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *s == '-')
		return 0;
	uint64_t mul = 1;
	switch (*end) {
	case 'K': case 'k': mul = 1ull << 10; end++; break;
	case 'M': case 'm': mul = 1ull << 20; end++; break;
	case 'G': case 'g': mul = 1ull << 30; end++; break;
	}
	if (*end || v > UINT64_MAX / mul)
		return 0;
	return v * mul;
}

/* What the machine row reports. */
typedef struct bench_host {
	struct utsname u;
	char cpu[128]; /* the first "model name" of /proc/cpuinfo, or "?" */
	char name[64]; /* the host name, or "?" */
	long cpus;     /* online */
	double load;   /* one-minute load average, NAN when unknown */
} bench_host;

static inline void bench_host_get(bench_host *h)
{
	char line[256];
	snprintf(h->cpu, sizeof(h->cpu), "?");
	snprintf(h->name, sizeof(h->name), "?");
	uname(&h->u);
	gethostname(h->name, sizeof(h->name));
	FILE *f = fopen("/proc/cpuinfo", "r");
	while (f && fgets(line, sizeof(line), f)) {
		char *colon = strchr(line, ':');
		if (colon && !strncmp(line, "model name", 10)) {
			const char *p = colon + 1;
			while (*p == ' ' || *p == '\t')
				p++;
			snprintf(h->cpu, sizeof(h->cpu), "%s", p);
			h->cpu[strcspn(h->cpu, "\n\"")] = 0;
			break;
		}
	}
	if (f)
		fclose(f);
	double load[1] = { NAN };
	getloadavg(load, 1);
	h->load = load[0];
	h->cpus = sysconf(_SC_NPROCESSORS_ONLN);
}

/* Why the js script cannot run (it is missing, or the npm package pkg is
 * not installed next to it), or NULL when both are there. */
static inline const char *bench_js_files_missing(const char *script, const char *pkg)
{
	static char why[PATH_MAX + 128];
	struct stat st;
	if (stat(script, &st) != 0) {
		snprintf(why, sizeof(why), "%s not found", script);
		return why;
	}
	char mods[PATH_MAX];
	const char *slash = strrchr(script, '/');
	snprintf(mods, sizeof(mods), "%.*snode_modules/%s/package.json", slash ? (int)(slash - script + 1) : 0, script,
		 pkg);
	if (stat(mods, &st) != 0) {
		snprintf(why, sizeof(why), "%s missing (run sh tests/interop/npm-setup.sh)", mods);
		return why;
	}
	return NULL;
}

#endif
