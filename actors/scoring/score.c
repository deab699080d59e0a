/* gossipsub v1.1 peer scoring (see score.h for the model). */
#include "actors/scoring/score.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <wisp/error.h>

#include "runtime/mem.h"

#define NONE UINT32_MAX

enum { REC_FREE = 0, REC_CONNECTED = 1, REC_RETAINED = 2 };

/* What P6 counts a peer under. IPv4 addresses are one key; IPv6 addresses
 * two: the address and its /64 (one host usually owns a whole /64). */
enum { KEY_V4 = 1, KEY_V6 = 2, KEY_V6_64 = 3 };

struct ipkey {
	uint8_t kind;
	uint8_t b[16];
};

/* Counters of one peer in one topic. */
struct tstat {
	wisp_tstamp graft; /* valid while in_mesh */
	double first;      /* P2 */
	double mesh;       /* P3 counter */
	double failure;    /* P3b */
	double invalid;    /* P4 counter */
	bool in_mesh;
};

struct rec {
	wisp_peer_id id;
	uint8_t state;
	uint8_t n_ips;
	uint32_t handle;     /* while connected */
	wisp_tstamp expire;  /* while retained */
	struct ipkey ips[2];
	uint32_t coloc[2];   /* records (connected or retained) sharing ips[i], this one included */
	double behaviour;    /* P7 counter */
	double app;          /* P5 */
};

struct topic {
	bool set;
	wisp_score_topic_params tp;
	uint64_t quantum_ns, activation_ns, window_ns;
};

struct wisp_score {
	const wisp_mem *mem;
	wisp_score_params p;
	uint64_t interval_ns;
	wisp_tstamp next_decay;
	uint32_t n_recs;      /* max_peers + max_retained */
	uint32_t n_free;
	uint32_t connected, retained;
	uint64_t retain_evicted, decays;
	struct rec *recs;
	struct tstat *ts;     /* n_recs * max_topics, record-major */
	uint32_t *by_handle;  /* max_peers: record index or NONE */
	uint32_t *free_recs;  /* stack of free record indices */
	struct topic *topics; /* max_topics */
};

/* ---- small helpers ------------------------------------------------------ */

static bool is_finite(double x)
{
	return x == x && x <= 1.79769313486231570815e308 && x >= -1.79769313486231570815e308;
}

/* b^k by squaring: decay over k missed intervals without libm. */
static double powi(double b, uint64_t k)
{
	double r = 1.0;
	while (k) {
		if (k & 1)
			r *= b;
		b *= b;
		k >>= 1;
		if (b == 0.0 && k)
			return r * 0.0;
	}
	return r;
}

static double clampd(double v, double lo, double hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

static struct tstat *tstat_of(const wisp_score *s, uint32_t ri, uint32_t topic)
{
	return &s->ts[(size_t)ri * s->p.max_topics + topic];
}

__attribute__((format(printf, 3, 4))) static int fail(char *why, size_t cap, const char *fmt, ...)
{
	if (why && cap) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(why, cap, fmt, ap);
		va_end(ap);
	}
	return WISP_ERR_INVALID_ARG;
}

/* ---- validation ------------------------------------------------------- */

static bool weight_ok(double w)
{
	return is_finite(w) && w >= -WISP_SCORE_WEIGHT_MAX && w <= WISP_SCORE_WEIGHT_MAX;
}

/* A decay factor: (0, 1) for an active component, [0, 1) for a disabled one
 * (a zeroed struct is valid; the counter of a disabled component stays 0). */
static bool decay_ok(double d, bool active)
{
	return is_finite(d) && d < 1.0 && (active ? d > 0.0 : d >= 0.0);
}

/* Caps and thresholds: finite and >= 0 always, > 0 for an active component. */
static bool level_ok(double v, bool active)
{
	return is_finite(v) && (active ? v > 0.0 : v >= 0.0);
}

int wisp_score_topic_params_validate(const wisp_score_topic_params *tp, char *why, size_t cap)
{
	if (!is_finite(tp->topic_weight) || tp->topic_weight < 0 || tp->topic_weight > WISP_SCORE_WEIGHT_MAX)
		return fail(why, cap, "topic_weight must be >= 0, at most %g and finite", WISP_SCORE_WEIGHT_MAX);

	/* P1 */
	if (!weight_ok(tp->time_in_mesh_weight) || tp->time_in_mesh_weight < 0)
		return fail(why, cap, "time_in_mesh_weight must be >= 0 (0 disables) and finite");
	if (tp->time_in_mesh_quantum_ms == 0)
		return fail(why, cap, "time_in_mesh_quantum_ms must be > 0");
	if (!level_ok(tp->time_in_mesh_cap, tp->time_in_mesh_weight != 0))
		return fail(why, cap, "time_in_mesh_cap must be > 0 and finite");

	/* P2 */
	bool on = tp->first_message_deliveries_weight != 0;
	if (!weight_ok(tp->first_message_deliveries_weight) || tp->first_message_deliveries_weight < 0)
		return fail(why, cap, "first_message_deliveries_weight must be >= 0 (0 disables) and finite");
	if (!decay_ok(tp->first_message_deliveries_decay, on))
		return fail(why, cap, "first_message_deliveries_decay must be in (0, 1)");
	if (!level_ok(tp->first_message_deliveries_cap, on))
		return fail(why, cap, "first_message_deliveries_cap must be > 0 and finite");

	/* P3 */
	on = tp->mesh_message_deliveries_weight != 0;
	if (!weight_ok(tp->mesh_message_deliveries_weight) || tp->mesh_message_deliveries_weight > 0)
		return fail(why, cap, "mesh_message_deliveries_weight must be <= 0 (0 disables) and finite");
	if (!decay_ok(tp->mesh_message_deliveries_decay, on))
		return fail(why, cap, "mesh_message_deliveries_decay must be in (0, 1)");
	if (!level_ok(tp->mesh_message_deliveries_threshold, on))
		return fail(why, cap, "mesh_message_deliveries_threshold must be > 0 and finite");
	if (!level_ok(tp->mesh_message_deliveries_cap, on))
		return fail(why, cap, "mesh_message_deliveries_cap must be > 0 and finite");
	if (on && tp->mesh_message_deliveries_cap < tp->mesh_message_deliveries_threshold)
		return fail(why, cap, "mesh_message_deliveries_cap must be >= mesh_message_deliveries_threshold");
	if (on && tp->mesh_message_deliveries_activation_ms < 1000)
		return fail(why, cap, "mesh_message_deliveries_activation_ms must be at least 1000");

	/* P3b */
	on = tp->mesh_failure_penalty_weight != 0;
	if (!weight_ok(tp->mesh_failure_penalty_weight) || tp->mesh_failure_penalty_weight > 0)
		return fail(why, cap, "mesh_failure_penalty_weight must be <= 0 (0 disables) and finite");
	if (!decay_ok(tp->mesh_failure_penalty_decay, on))
		return fail(why, cap, "mesh_failure_penalty_decay must be in (0, 1)");
	if (on && (!level_ok(tp->mesh_message_deliveries_threshold, true) ||
		   tp->mesh_message_deliveries_cap < tp->mesh_message_deliveries_threshold))
		return fail(why, cap, "mesh_failure_penalty_weight needs mesh_message_deliveries_threshold > 0 "
			    "and mesh_message_deliveries_cap >= it");

	/* P4 */
	if (!weight_ok(tp->invalid_message_deliveries_weight) || tp->invalid_message_deliveries_weight > 0)
		return fail(why, cap, "invalid_message_deliveries_weight must be <= 0 (0 disables) and finite");
	if (!decay_ok(tp->invalid_message_deliveries_decay, true))
		return fail(why, cap, "invalid_message_deliveries_decay must be in (0, 1)");
	return WISP_OK;
}

int wisp_score_params_validate(const wisp_score_params *p, char *why, size_t cap)
{
	if (p->version != WISP_SCORE_PARAMS_VERSION)
		return fail(why, cap, "version is %u; this library knows version %u (call wisp_score_params_default)",
			    p->version, WISP_SCORE_PARAMS_VERSION);
	if (!level_ok(p->topic_score_cap, false))
		return fail(why, cap, "topic_score_cap must be >= 0 (0 = no cap) and finite");

	if (!weight_ok(p->app_specific_weight) || p->app_specific_weight < 0)
		return fail(why, cap, "app_specific_weight must be >= 0 and finite");

	if (!weight_ok(p->ip_colocation_factor_weight) || p->ip_colocation_factor_weight > 0)
		return fail(why, cap, "ip_colocation_factor_weight must be <= 0 (0 disables) and finite");
	if (!is_finite(p->ip_colocation_factor_threshold) ||
	    (p->ip_colocation_factor_weight != 0 && p->ip_colocation_factor_threshold < 1))
		return fail(why, cap, "ip_colocation_factor_threshold must be at least 1");
	if (p->n_ip_whitelist > WISP_SCORE_IP_WHITELIST_MAX)
		return fail(why, cap, "n_ip_whitelist must be at most %u", WISP_SCORE_IP_WHITELIST_MAX);
	for (uint32_t i = 0; i < p->n_ip_whitelist; i++)
		if (p->ip_whitelist[i].prefix_len > 128)
			return fail(why, cap, "ip_whitelist[%u].prefix_len must be at most 128", i);

	bool on = p->behaviour_penalty_weight != 0;
	if (!weight_ok(p->behaviour_penalty_weight) || p->behaviour_penalty_weight > 0)
		return fail(why, cap, "behaviour_penalty_weight must be <= 0 (0 disables) and finite");
	if (!decay_ok(p->behaviour_penalty_decay, on))
		return fail(why, cap, "behaviour_penalty_decay must be in (0, 1)");
	if (!level_ok(p->behaviour_penalty_threshold, false))
		return fail(why, cap, "behaviour_penalty_threshold must be >= 0 and finite");

	if (p->decay_interval_ms < 1000)
		return fail(why, cap, "decay_interval_ms must be at least 1000");
	if (!is_finite(p->decay_to_zero) || p->decay_to_zero <= 0 || p->decay_to_zero >= 1)
		return fail(why, cap, "decay_to_zero must be in (0, 1)");

	const wisp_score_thresholds *t = &p->thresholds;
	if (!is_finite(t->gossip) || t->gossip > 0)
		return fail(why, cap, "thresholds.gossip must be <= 0 and finite");
	if (!is_finite(t->publish) || t->publish > t->gossip)
		return fail(why, cap, "thresholds.publish must be <= thresholds.gossip and finite");
	if (!is_finite(t->graylist) || t->graylist > t->publish)
		return fail(why, cap, "thresholds.graylist must be <= thresholds.publish and finite");
	if (!level_ok(t->accept_px, false))
		return fail(why, cap, "thresholds.accept_px must be >= 0 and finite");
	if (!level_ok(t->opportunistic_graft, false))
		return fail(why, cap, "thresholds.opportunistic_graft must be >= 0 and finite");

	if (p->max_peers < 1 || p->max_peers > WISP_SCORE_MAX_PEERS_LIMIT)
		return fail(why, cap, "max_peers must be in 1..%u", WISP_SCORE_MAX_PEERS_LIMIT);
	if (p->max_retained > WISP_SCORE_MAX_PEERS_LIMIT)
		return fail(why, cap, "max_retained must be at most %u", WISP_SCORE_MAX_PEERS_LIMIT);
	if (p->max_topics < 1 || p->max_topics > WISP_SCORE_MAX_TOPICS_LIMIT)
		return fail(why, cap, "max_topics must be in 1..%u", WISP_SCORE_MAX_TOPICS_LIMIT);
	return WISP_OK;
}

/* ---- defaults and the Atlas profile --------------------------------- */

double wisp_score_decay_factor(double seconds, uint32_t interval_ms, double decay_to_zero)
{
	if (!is_finite(seconds) || seconds <= 0 || interval_ms == 0 || !is_finite(decay_to_zero) ||
	    decay_to_zero <= 0 || decay_to_zero >= 1)
		return 0.0;
	double t = seconds * 1000.0 / interval_ms + 0.5;
	uint64_t ticks = t >= 1e15 ? (uint64_t)1e15 : (uint64_t)t;
	if (ticks == 0)
		ticks = 1;
	/* x^ticks = decay_to_zero for x in (0, 1): bisection, powi is monotonic. */
	double lo = 0.0, hi = 1.0;
	for (int i = 0; i < 200; i++) {
		double mid = (lo + hi) / 2;
		if (mid == lo || mid == hi)
			break;
		if (powi(mid, ticks) < decay_to_zero)
			lo = mid;
		else
			hi = mid;
	}
	return lo > 0 ? lo : hi / 2;
}

/* The score a peer can earn in one topic before its topic weight:
 * P1 up to MESH_MAX after an hour in the mesh, P2 up to FIRST_MAX. */
#define MESH_MAX 10.0
#define FIRST_MAX 40.0

void wisp_score_params_default(wisp_score_params *p)
{
	memset(p, 0, sizeof(*p));
	p->version = WISP_SCORE_PARAMS_VERSION;
	/* Topics alone never earn more than this; accept_px is out of their reach
	 * (only the application's P5, e.g. for known validators, gets there). */
	p->topic_score_cap = 40;
	p->app_specific_weight = 1;
	/* More than 4 peers behind one address (or one IPv6 /64) costs 40 per
	 * extra peer squared: the 5th cancels the most a peer earns from topics,
	 * the 9th reaches the gossip threshold. */
	p->ip_colocation_factor_weight = -40;
	p->ip_colocation_factor_threshold = 4;
	p->decay_interval_ms = 1000;
	p->decay_to_zero = 0.01;
	/* 6 penalties (broken IWANT promises, GRAFTs in backoff) are free; then 10
	 * over the threshold reach the gossip threshold, 20 the graylist. The
	 * counter forgets over 10 minutes. */
	p->behaviour_penalty_weight = -10;
	p->behaviour_penalty_threshold = 6;
	p->behaviour_penalty_decay = wisp_score_decay_factor(600, p->decay_interval_ms, p->decay_to_zero);
	/* An hour: reconnecting does not wash a penalty, and with max_retained
	 * the memory for it is bounded. */
	p->retain_score_ms = 3600u * 1000u;
	/* Relative to topic_score_cap (40): gossip at -25x, publish -50x,
	 * graylist -100x, so a few penalties demote a peer step by step. */
	p->thresholds.gossip = -1000;
	p->thresholds.publish = -2000;
	p->thresholds.graylist = -4000;
	p->thresholds.accept_px = 100;
	p->thresholds.opportunistic_graft = 2; /* 5% of the topic cap */
	p->max_peers = 256;
	p->max_retained = 256;
	p->max_topics = 16;
}

/* How a topic is tuned from its expected traffic. */
struct profile {
	double topic_weight;
	double msgs_per_s;      /* network-wide; <= 0: P2 from a fixed cap, P3 off */
	bool mesh_deliveries;   /* P3 and P3b */
	double invalid_cost;    /* what the first invalid message costs, at the total score */
	double invalid_decay_s; /* P4 forgets over this long */
};

static void topic_from_profile(wisp_score_topic_params *tp, const wisp_score_params *p, const struct profile *pr,
			       double mesh_d)
{
	memset(tp, 0, sizeof(*tp));
	double dz = p->decay_to_zero;
	uint32_t ival = p->decay_interval_ms;
	double per_ival = ival / 1000.0;
	tp->topic_weight = pr->topic_weight;

	/* P1: one point a second, up to an hour. */
	tp->time_in_mesh_quantum_ms = 1000;
	tp->time_in_mesh_cap = 3600;
	tp->time_in_mesh_weight = MESH_MAX / tp->time_in_mesh_cap;

	/* P2: a peer delivering first twice its fair share (1/D of the topic)
	 * reaches the cap. The counter forgets over the time 50 fair-share
	 * deliveries take (1 min .. 1 h). */
	if (pr->msgs_per_s > 0) {
		double fair = pr->msgs_per_s * per_ival / mesh_d; /* first deliveries per interval */
		double t2 = clampd(50 * mesh_d / pr->msgs_per_s, 60, 3600);
		tp->first_message_deliveries_decay = wisp_score_decay_factor(t2, ival, dz);
		double cap = 2 * fair / (1 - tp->first_message_deliveries_decay);
		tp->first_message_deliveries_cap = cap < 1 ? 1 : cap;
	} else {
		tp->first_message_deliveries_decay = wisp_score_decay_factor(600, ival, dz);
		tp->first_message_deliveries_cap = 100;
	}
	tp->first_message_deliveries_weight = FIRST_MAX / tp->first_message_deliveries_cap;

	/* P3: the counter of a peer delivering its fair share settles at
	 * fair / (1 - decay); the threshold is an eighth of that (being first is
	 * noisy, and duplicates inside the window only add to it); the cap is the
	 * fair share. The counter forgets over the time 100 fair-share deliveries
	 * take (1 min .. 1 h), so low-rate topics are judged on enough messages.
	 * A full deficit costs twice topic_score_cap: a silent mesh peer goes
	 * negative (and is pruned) however much it earned before. */
	if (pr->mesh_deliveries && pr->msgs_per_s > 0) {
		double fair = pr->msgs_per_s * per_ival / mesh_d;
		double t3 = clampd(100 * mesh_d / pr->msgs_per_s, 60, 3600);
		double d3 = wisp_score_decay_factor(t3, ival, dz);
		double settled = fair / (1 - d3);
		double thr = settled / 8;
		double full = 2 * (p->topic_score_cap > 0 ? p->topic_score_cap : 40);
		tp->mesh_message_deliveries_decay = d3;
		tp->mesh_message_deliveries_threshold = thr;
		tp->mesh_message_deliveries_cap = settled;
		tp->mesh_message_deliveries_weight = -full / (pr->topic_weight * thr * thr);
		/* a quarter of the decay time: the counter of a fair peer is at
		 * ~68% of settled by then; never under 30 s after a GRAFT */
		double act = clampd(t3 / 4, 30, 3600);
		tp->mesh_message_deliveries_activation_ms = (uint32_t)(act * 1000);
		/* ms: a near-first copy, not our own message replayed back */
		tp->mesh_message_deliveries_window_ms = 10;
		/* P3b costs as much per failed mesh stay and is remembered longer */
		tp->mesh_failure_penalty_weight = tp->mesh_message_deliveries_weight;
		tp->mesh_failure_penalty_decay = wisp_score_decay_factor(clampd(2 * t3, 600, 3600), ival, dz);
	}

	/* P4: cost^1 for the first invalid message, then squared. */
	tp->invalid_message_deliveries_weight = -pr->invalid_cost / pr->topic_weight;
	tp->invalid_message_deliveries_decay = wisp_score_decay_factor(pr->invalid_decay_s, ival, dz);
}

void wisp_score_topic_default(wisp_score_topic_params *tp, const wisp_score_params *p)
{
	struct profile pr = { .topic_weight = 1, .msgs_per_s = 0, .mesh_deliveries = false,
			      .invalid_cost = p->topic_score_cap > 0 ? p->topic_score_cap : 40,
			      .invalid_decay_s = 3600 };
	topic_from_profile(tp, p, &pr, 8);
}

static const char *const atlas_names[WISP_SCORE_ATLAS_TOPICS] = {
	"atlas/heartbeat/v1", "atlas/proposal/v1", "atlas/vote/v1", "atlas/tx/v1",
};

const char *wisp_score_atlas_topic_name(unsigned i)
{
	return i < WISP_SCORE_ATLAS_TOPICS ? atlas_names[i] : NULL;
}

static double or_default(double v, double d)
{
	return is_finite(v) && v > 0 ? v : d;
}

void wisp_score_atlas(wisp_score_params *p, wisp_score_topic_params tp[WISP_SCORE_ATLAS_TOPICS],
		      const wisp_score_atlas_net *net)
{
	wisp_score_atlas_net n = { 0 };
	if (net)
		n = *net;
	double validators = or_default(n.validators, 100);
	double round_s = or_default(n.round_s, 2);
	double votes = or_default(n.votes_per_round, 2);
	double hb_s = or_default(n.heartbeat_s, 10);
	double tx = or_default(n.tx_per_s, 50);
	double d = or_default(n.mesh_d, 8);

	wisp_score_params_default(p);
	double cap = p->topic_score_cap;

	/* Proposals and votes carry consensus: half the weight each, mesh
	 * delivery enforced, an invalid one (a bad signature cannot be an
	 * accident) costs the whole topic cap and is remembered for an hour:
	 * 5 reach the gossip threshold, 10 the graylist. */
	const struct profile prop = { 0.5, 1 / round_s, true, cap, 3600 };
	const struct profile vote = { 0.5, validators * votes / round_s, true, cap, 3600 };
	/* Heartbeats are liveness only: little weight, no mesh delivery
	 * requirement (a quiet mesh must not be pruned), invalid ones cost a
	 * quarter of the cap. */
	const struct profile hb = { 0.1, validators / hb_s, false, cap / 4, 1800 };
	/* Transactions are bursty and may be quiet for long: no mesh delivery
	 * requirement. Validity depends on the mempool (nonces race), so an
	 * invalid one costs a tenth of the cap and is forgotten in 10 minutes:
	 * 16 in a burst reach the gossip threshold, 32 the graylist. */
	const struct profile txp = { 0.2, tx, false, cap / 10, 600 };

	topic_from_profile(&tp[WISP_SCORE_ATLAS_HEARTBEAT], p, &hb, d);
	topic_from_profile(&tp[WISP_SCORE_ATLAS_PROPOSAL], p, &prop, d);
	topic_from_profile(&tp[WISP_SCORE_ATLAS_VOTE], p, &vote, d);
	topic_from_profile(&tp[WISP_SCORE_ATLAS_TX], p, &txp, d);
}

/* ---- IP keys (P6) ----------------------------------------------------- */

static bool in_prefix(const uint8_t a[16], const wisp_score_ip_prefix *pf)
{
	unsigned bits = pf->prefix_len, full = bits / 8, rest = bits % 8;
	if (memcmp(a, pf->addr, full) != 0)
		return false;
	if (rest) {
		uint8_t mask = (uint8_t)(0xff << (8 - rest));
		if ((a[full] & mask) != (pf->addr[full] & mask))
			return false;
	}
	return true;
}

static unsigned ip_keys(const wisp_score *s, const uint8_t *ip, struct ipkey out[2])
{
	static const uint8_t v4map[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	static const uint8_t zero[16] = { 0 };
	static const uint8_t v6lo[16] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 };
	if (!ip)
		return 0;
	bool v4 = memcmp(ip, v4map, 12) == 0;
	if (v4) {
		/* unspecified and loopback (127/8) never count: local tests and
		 * proxies would otherwise penalize themselves */
		if (memcmp(ip + 12, zero, 4) == 0 || ip[12] == 127)
			return 0;
	} else if (memcmp(ip, zero, 16) == 0 || memcmp(ip, v6lo, 16) == 0) {
		return 0;
	}
	for (uint32_t i = 0; i < s->p.n_ip_whitelist; i++)
		if (in_prefix(ip, &s->p.ip_whitelist[i]))
			return 0;
	memset(out, 0, 2 * sizeof(*out));
	memcpy(out[0].b, ip, 16);
	if (v4) {
		out[0].kind = KEY_V4;
		return 1;
	}
	out[0].kind = KEY_V6;
	out[1].kind = KEY_V6_64;
	memcpy(out[1].b, ip, 8);
	return 2;
}

static bool key_equal(const struct ipkey *a, const struct ipkey *b)
{
	return a->kind == b->kind && memcmp(a->b, b->b, 16) == 0;
}

/* Add record ri's keys to every other record's count and count its own.
 * O(records) per connection event, so P6 costs nothing per query. */
static void ip_link(wisp_score *s, uint32_t ri)
{
	struct rec *r = &s->recs[ri];
	for (unsigned k = 0; k < r->n_ips; k++) {
		r->coloc[k] = 1;
		for (uint32_t j = 0; j < s->n_recs; j++) {
			struct rec *o = &s->recs[j];
			if (j == ri || o->state == REC_FREE)
				continue;
			for (unsigned m = 0; m < o->n_ips; m++)
				if (key_equal(&r->ips[k], &o->ips[m])) {
					o->coloc[m]++;
					r->coloc[k]++;
				}
		}
	}
}

static void ip_unlink(wisp_score *s, uint32_t ri)
{
	struct rec *r = &s->recs[ri];
	for (unsigned k = 0; k < r->n_ips; k++)
		for (uint32_t j = 0; j < s->n_recs; j++) {
			struct rec *o = &s->recs[j];
			if (j == ri || o->state == REC_FREE)
				continue;
			for (unsigned m = 0; m < o->n_ips; m++)
				if (key_equal(&r->ips[k], &o->ips[m]))
					o->coloc[m]--;
		}
	r->n_ips = 0;
}

/* ---- the score -------------------------------------------------------- */

/* The P3 deficit of a mesh peer whose activation time has passed, else 0. */
static double deficit(const struct topic *t, const struct tstat *ts, wisp_tstamp now)
{
	const wisp_score_topic_params *tp = &t->tp;
	if (!ts->in_mesh || tp->mesh_message_deliveries_threshold <= 0)
		return 0;
	wisp_tstamp in_mesh = now > ts->graft ? now - ts->graft : 0;
	if (in_mesh <= t->activation_ns || ts->mesh >= tp->mesh_message_deliveries_threshold)
		return 0;
	return tp->mesh_message_deliveries_threshold - ts->mesh;
}

static void breakdown(const wisp_score *s, uint32_t ri, wisp_tstamp now, wisp_score_breakdown *b)
{
	const struct rec *r = &s->recs[ri];
	const wisp_score_params *p = &s->p;
	double topics = 0;
	for (uint32_t t = 0; t < p->max_topics; t++) {
		const struct topic *tc = &s->topics[t];
		if (!tc->set)
			continue;
		const wisp_score_topic_params *tp = &tc->tp;
		const struct tstat *ts = tstat_of(s, ri, t);
		double v = 0;
		if (ts->in_mesh && tp->time_in_mesh_weight != 0) {
			wisp_tstamp in_mesh = now > ts->graft ? now - ts->graft : 0;
			double p1 = (double)(in_mesh / tc->quantum_ns); /* whole quanta */
			if (p1 > tp->time_in_mesh_cap)
				p1 = tp->time_in_mesh_cap;
			v += p1 * tp->time_in_mesh_weight;
		}
		v += ts->first * tp->first_message_deliveries_weight;
		double d = deficit(tc, ts, now);
		v += d * d * tp->mesh_message_deliveries_weight;
		v += ts->failure * tp->mesh_failure_penalty_weight;
		v += ts->invalid * ts->invalid * tp->invalid_message_deliveries_weight;
		topics += v * tp->topic_weight;
	}
	if (p->topic_score_cap > 0 && topics > p->topic_score_cap)
		topics = p->topic_score_cap;

	double p6 = 0;
	for (unsigned k = 0; k < r->n_ips; k++)
		if (r->coloc[k] > p->ip_colocation_factor_threshold) {
			double surplus = r->coloc[k] - p->ip_colocation_factor_threshold;
			p6 += surplus * surplus;
		}
	double p7 = 0;
	if (r->behaviour > p->behaviour_penalty_threshold) {
		double excess = r->behaviour - p->behaviour_penalty_threshold;
		p7 = excess * excess;
	}
	b->topics = topics;
	b->app = r->app * p->app_specific_weight;
	b->ip = p6 * p->ip_colocation_factor_weight;
	b->behaviour = p7 * p->behaviour_penalty_weight;
	b->score = b->topics + b->app + b->ip + b->behaviour;
}

static double score_rec(const wisp_score *s, uint32_t ri, wisp_tstamp now)
{
	wisp_score_breakdown b;
	breakdown(s, ri, now, &b);
	return b.score;
}

/* ---- lifecycle -------------------------------------------------------- */

static void set_topic_ns(struct topic *t)
{
	t->quantum_ns = (uint64_t)t->tp.time_in_mesh_quantum_ms * WISP_NS_PER_MS;
	t->activation_ns = (uint64_t)t->tp.mesh_message_deliveries_activation_ms * WISP_NS_PER_MS;
	t->window_ns = (uint64_t)t->tp.mesh_message_deliveries_window_ms * WISP_NS_PER_MS;
}

int wisp_score_new(wisp_score **out, const wisp_mem *mem, const wisp_score_params *p, wisp_tstamp now)
{
	*out = NULL;
	if (wisp_score_params_validate(p, NULL, 0) != WISP_OK)
		return WISP_ERR_INVALID_ARG;
	if (!mem)
		mem = wisp_mem_default();
	wisp_score *s = wisp_calloc(mem, 1, sizeof(*s));
	if (!s)
		return WISP_ERR_NOMEM;
	s->mem = mem;
	s->p = *p;
	s->interval_ns = (uint64_t)p->decay_interval_ms * WISP_NS_PER_MS;
	s->next_decay = now + s->interval_ns;
	s->n_recs = p->max_peers + p->max_retained;
	s->recs = wisp_calloc(mem, s->n_recs, sizeof(*s->recs));
	s->ts = wisp_calloc(mem, (size_t)s->n_recs * p->max_topics, sizeof(*s->ts));
	s->by_handle = wisp_malloc(mem, (size_t)p->max_peers * sizeof(*s->by_handle));
	s->free_recs = wisp_malloc(mem, (size_t)s->n_recs * sizeof(*s->free_recs));
	s->topics = wisp_calloc(mem, p->max_topics, sizeof(*s->topics));
	if (!s->recs || !s->ts || !s->by_handle || !s->free_recs || !s->topics) {
		wisp_score_free(s);
		return WISP_ERR_NOMEM;
	}
	for (uint32_t i = 0; i < p->max_peers; i++)
		s->by_handle[i] = NONE;
	/* pop order: record 0 first */
	for (uint32_t i = 0; i < s->n_recs; i++)
		s->free_recs[i] = s->n_recs - 1 - i;
	s->n_free = s->n_recs;
	*out = s;
	return WISP_OK;
}

void wisp_score_free(wisp_score *s)
{
	if (!s)
		return;
	const wisp_mem *mem = s->mem;
	wisp_free(mem, s->recs);
	wisp_free(mem, s->ts);
	wisp_free(mem, s->by_handle);
	wisp_free(mem, s->free_recs);
	wisp_free(mem, s->topics);
	wisp_free(mem, s);
}

int wisp_score_set_topic(wisp_score *s, uint32_t topic, const wisp_score_topic_params *tp)
{
	if (topic >= s->p.max_topics)
		return WISP_ERR_LIMIT;
	struct topic *t = &s->topics[topic];
	if (!tp) {
		t->set = false;
		for (uint32_t ri = 0; ri < s->n_recs; ri++) {
			struct tstat *ts = tstat_of(s, ri, topic);
			ts->first = ts->mesh = ts->failure = ts->invalid = 0;
		}
		return WISP_OK;
	}
	if (wisp_score_topic_params_validate(tp, NULL, 0) != WISP_OK)
		return WISP_ERR_INVALID_ARG;
	t->tp = *tp;
	set_topic_ns(t);
	/* as go: lowered caps apply to the counters at once. (An unscored
	 * topic's counters are 0, so a new topic needs nothing.) */
	for (uint32_t ri = 0; ri < s->n_recs; ri++) {
		struct tstat *ts = tstat_of(s, ri, topic);
		if (ts->first > tp->first_message_deliveries_cap)
			ts->first = tp->first_message_deliveries_cap;
		if (ts->mesh > tp->mesh_message_deliveries_cap)
			ts->mesh = tp->mesh_message_deliveries_cap;
	}
	t->set = true;
	return WISP_OK;
}

static void release(wisp_score *s, uint32_t ri)
{
	struct rec *r = &s->recs[ri];
	ip_unlink(s, ri);
	r->state = REC_FREE;
	s->free_recs[s->n_free++] = ri;
}

static void init_rec(wisp_score *s, uint32_t ri, const wisp_peer_id *id)
{
	struct rec *r = &s->recs[ri];
	memset(r, 0, sizeof(*r));
	r->id = *id;
	memset(tstat_of(s, ri, 0), 0, (size_t)s->p.max_topics * sizeof(struct tstat));
}

int wisp_score_add_peer(wisp_score *s, uint32_t peer, const wisp_peer_id *id, const uint8_t *ip, wisp_tstamp now)
{
	if (peer >= s->p.max_peers)
		return WISP_ERR_LIMIT;
	if (id->len == 0 || id->len > WISP_PEER_ID_MAX)
		return WISP_ERR_INVALID_ARG;
	if (s->by_handle[peer] != NONE)
		return WISP_ERR_EXISTS;
	/* Peer ids are only compared when peers connect: a linear scan over at
	 * most max_peers + max_retained records, with no hash an attacker could
	 * aim at. */
	uint32_t ri = NONE;
	for (uint32_t j = 0; j < s->n_recs; j++) {
		struct rec *o = &s->recs[j];
		if (o->state == REC_FREE || !wisp_peer_id_equal(&o->id, id))
			continue;
		if (o->state == REC_CONNECTED)
			return WISP_ERR_EXISTS;
		s->retained--;
		if (o->expire > now) {
			ri = j; /* the retained score comes back */
			ip_unlink(s, j);
		} else {
			release(s, j);
		}
		break;
	}
	if (ri == NONE) {
		/* connected < max_peers and retained <= max_retained */
		if (s->n_free == 0)
			return WISP_ERR_INTERNAL;
		ri = s->free_recs[--s->n_free];
		init_rec(s, ri, id);
	}
	struct rec *r = &s->recs[ri];
	r->state = REC_CONNECTED;
	r->handle = peer;
	r->expire = 0;
	r->n_ips = (uint8_t)ip_keys(s, ip, r->ips);
	ip_link(s, ri);
	s->by_handle[peer] = ri;
	s->connected++;
	return WISP_OK;
}

static uint32_t lookup(const wisp_score *s, uint32_t peer, int *err)
{
	if (peer >= s->p.max_peers) {
		*err = WISP_ERR_LIMIT;
		return NONE;
	}
	uint32_t ri = s->by_handle[peer];
	*err = ri == NONE ? WISP_ERR_NOTFOUND : WISP_OK;
	return ri;
}

/* Forget the retained record with the highest score to make room for
 * candidate (also retained, not counted yet); or candidate itself when no
 * retained record scores higher. The lowest scores are the ones worth
 * remembering. */
static void make_room(wisp_score *s, uint32_t cand, wisp_tstamp now)
{
	uint32_t victim = cand;
	double worst = score_rec(s, cand, now);
	for (uint32_t j = 0; j < s->n_recs; j++) {
		if (j == cand || s->recs[j].state != REC_RETAINED)
			continue;
		double v = score_rec(s, j, now);
		if (v >= worst) {
			worst = v;
			victim = j;
		}
	}
	if (victim != cand)
		s->retained--;
	release(s, victim);
	s->retain_evicted++;
}

int wisp_score_remove_peer(wisp_score *s, uint32_t peer, wisp_tstamp now)
{
	int err;
	uint32_t ri = lookup(s, peer, &err);
	if (ri == NONE)
		return err;
	struct rec *r = &s->recs[ri];
	s->by_handle[peer] = NONE;
	s->connected--;
	/* as go and rust: only non-positive scores are worth remembering (a
	 * good peer that reconnects earns its score again) */
	if (score_rec(s, ri, now) > 0 || s->p.retain_score_ms == 0) {
		release(s, ri);
		return WISP_OK;
	}
	for (uint32_t t = 0; t < s->p.max_topics; t++) {
		struct tstat *ts = tstat_of(s, ri, t);
		if (s->topics[t].set) {
			ts->first = 0;
			double d = deficit(&s->topics[t], ts, now);
			ts->failure = clampd(ts->failure + d * d, 0, WISP_SCORE_COUNTER_MAX);
		}
		ts->in_mesh = false;
	}
	r->state = REC_RETAINED;
	r->expire = now + (uint64_t)s->p.retain_score_ms * WISP_NS_PER_MS;
	if (s->retained >= s->p.max_retained) {
		make_room(s, ri, now);
		if (r->state == REC_FREE)
			return WISP_OK;
	}
	s->retained++;
	return WISP_OK;
}

/* ---- events ------------------------------------------------------------- */

/* The counters of a connected peer in a topic; NULL with *err set. */
static struct tstat *event_target(wisp_score *s, uint32_t peer, uint32_t topic, uint32_t *ri_out, int *err)
{
	uint32_t ri = lookup(s, peer, err);
	if (ri == NONE)
		return NULL;
	if (topic >= s->p.max_topics) {
		*err = WISP_ERR_LIMIT;
		return NULL;
	}
	if (ri_out)
		*ri_out = ri;
	return tstat_of(s, ri, topic);
}

int wisp_score_graft(wisp_score *s, uint32_t peer, uint32_t topic, wisp_tstamp now)
{
	int err;
	struct tstat *ts = event_target(s, peer, topic, NULL, &err);
	if (!ts)
		return err;
	if (!ts->in_mesh) {
		ts->in_mesh = true;
		ts->graft = now;
	}
	return WISP_OK;
}

int wisp_score_prune(wisp_score *s, uint32_t peer, uint32_t topic, wisp_tstamp now)
{
	int err;
	struct tstat *ts = event_target(s, peer, topic, NULL, &err);
	if (!ts)
		return err;
	if (!ts->in_mesh)
		return WISP_OK;
	if (s->topics[topic].set) {
		/* P3b: the sticky memory of an under-delivering mesh stay */
		double d = deficit(&s->topics[topic], ts, now);
		ts->failure = clampd(ts->failure + d * d, 0, WISP_SCORE_COUNTER_MAX);
	}
	ts->in_mesh = false;
	return WISP_OK;
}

static void mesh_delivery(const struct topic *t, struct tstat *ts)
{
	ts->mesh += 1;
	if (ts->mesh > t->tp.mesh_message_deliveries_cap)
		ts->mesh = t->tp.mesh_message_deliveries_cap;
}

int wisp_score_first_delivery(wisp_score *s, uint32_t peer, uint32_t topic, wisp_tstamp now)
{
	(void)now;
	int err;
	struct tstat *ts = event_target(s, peer, topic, NULL, &err);
	if (!ts)
		return err;
	const struct topic *t = &s->topics[topic];
	if (!t->set)
		return WISP_OK;
	ts->first += 1;
	if (ts->first > t->tp.first_message_deliveries_cap)
		ts->first = t->tp.first_message_deliveries_cap;
	if (ts->in_mesh)
		mesh_delivery(t, ts);
	return WISP_OK;
}

int wisp_score_duplicate(wisp_score *s, uint32_t peer, uint32_t topic, wisp_tstamp validated_at, wisp_tstamp now)
{
	int err;
	struct tstat *ts = event_target(s, peer, topic, NULL, &err);
	if (!ts)
		return err;
	const struct topic *t = &s->topics[topic];
	if (!t->set || !ts->in_mesh)
		return WISP_OK;
	/* near-first: during validation, or within the window after it (a
	 * later copy could be our own forward echoed back) */
	if (validated_at != WISP_SCORE_VALIDATING && now > validated_at && now - validated_at > t->window_ns)
		return WISP_OK;
	mesh_delivery(t, ts);
	return WISP_OK;
}

int wisp_score_invalid(wisp_score *s, uint32_t peer, uint32_t topic, wisp_tstamp now)
{
	(void)now;
	int err;
	struct tstat *ts = event_target(s, peer, topic, NULL, &err);
	if (!ts)
		return err;
	if (s->topics[topic].set)
		ts->invalid = clampd(ts->invalid + 1, 0, WISP_SCORE_COUNTER_MAX);
	return WISP_OK;
}

int wisp_score_behaviour_penalty(wisp_score *s, uint32_t peer, double count, wisp_tstamp now)
{
	(void)now;
	int err;
	uint32_t ri = lookup(s, peer, &err);
	if (ri == NONE)
		return err;
	if (!is_finite(count) || count < 0)
		return WISP_ERR_INVALID_ARG;
	struct rec *r = &s->recs[ri];
	r->behaviour = clampd(r->behaviour + count, 0, WISP_SCORE_COUNTER_MAX);
	return WISP_OK;
}

int wisp_score_app_specific(wisp_score *s, uint32_t peer, double value)
{
	int err;
	uint32_t ri = lookup(s, peer, &err);
	if (ri == NONE)
		return err;
	if (!is_finite(value))
		return WISP_ERR_INVALID_ARG;
	s->recs[ri].app = clampd(value, -WISP_SCORE_APP_MAX, WISP_SCORE_APP_MAX);
	return WISP_OK;
}

int wisp_score_apply(wisp_score *s, const wisp_score_event *e, wisp_tstamp now)
{
	switch (e->kind) {
	case WISP_SCORE_EV_GRAFT:
		return wisp_score_graft(s, e->peer, e->topic, now);
	case WISP_SCORE_EV_PRUNE:
		return wisp_score_prune(s, e->peer, e->topic, now);
	case WISP_SCORE_EV_FIRST_DELIVERY:
		return wisp_score_first_delivery(s, e->peer, e->topic, now);
	case WISP_SCORE_EV_DUPLICATE:
		return wisp_score_duplicate(s, e->peer, e->topic, e->u.validated_at, now);
	case WISP_SCORE_EV_INVALID:
		return wisp_score_invalid(s, e->peer, e->topic, now);
	case WISP_SCORE_EV_BEHAVIOUR_PENALTY:
		return wisp_score_behaviour_penalty(s, e->peer, e->u.value, now);
	case WISP_SCORE_EV_APP_SPECIFIC:
		return wisp_score_app_specific(s, e->peer, e->u.value);
	default:
		return WISP_ERR_INVALID_ARG;
	}
}

int wisp_score_event_pack(const wisp_score_event *e, uint64_t *a, uint64_t *b)
{
	if (e->topic >= (1u << 24) || e->kind < WISP_SCORE_EV_GRAFT || e->kind > WISP_SCORE_EV_APP_SPECIFIC)
		return WISP_ERR_INVALID_ARG;
	*a = (uint64_t)e->peer | (uint64_t)e->topic << 32 | (uint64_t)e->kind << 56;
	if (e->kind == WISP_SCORE_EV_DUPLICATE)
		*b = e->u.validated_at;
	else if (e->kind == WISP_SCORE_EV_BEHAVIOUR_PENALTY || e->kind == WISP_SCORE_EV_APP_SPECIFIC)
		memcpy(b, &e->u.value, sizeof(*b));
	else
		*b = 0;
	return WISP_OK;
}

int wisp_score_event_unpack(wisp_score_event *e, uint64_t a, uint64_t b)
{
	uint8_t kind = (uint8_t)(a >> 56);
	if (kind < WISP_SCORE_EV_GRAFT || kind > WISP_SCORE_EV_APP_SPECIFIC)
		return WISP_ERR_INVALID_ARG;
	memset(e, 0, sizeof(*e));
	e->kind = kind;
	e->peer = (uint32_t)a;
	e->topic = (uint32_t)(a >> 32) & 0xffffffu;
	if (kind == WISP_SCORE_EV_DUPLICATE)
		e->u.validated_at = b;
	else if (kind == WISP_SCORE_EV_BEHAVIOUR_PENALTY || kind == WISP_SCORE_EV_APP_SPECIFIC)
		memcpy(&e->u.value, &b, sizeof(b));
	return WISP_OK;
}

/* ---- reading --------------------------------------------------------- */

double wisp_score_get(const wisp_score *s, uint32_t peer, wisp_tstamp now)
{
	int err;
	uint32_t ri = lookup(s, peer, &err);
	return ri == NONE ? 0.0 : score_rec(s, ri, now);
}

double wisp_score_get_id(const wisp_score *s, const wisp_peer_id *id, wisp_tstamp now)
{
	for (uint32_t j = 0; j < s->n_recs; j++) {
		const struct rec *o = &s->recs[j];
		if (o->state == REC_FREE || !wisp_peer_id_equal(&o->id, id))
			continue;
		if (o->state == REC_RETAINED && o->expire <= now)
			return 0.0;
		return score_rec(s, j, now);
	}
	return 0.0;
}

size_t wisp_score_snapshot(const wisp_score *s, double *out, size_t n, wisp_tstamp now)
{
	size_t present = 0;
	for (size_t i = 0; i < n; i++) {
		uint32_t ri = i < s->p.max_peers ? s->by_handle[i] : NONE;
		if (ri == NONE) {
			out[i] = __builtin_nan("");
			continue;
		}
		out[i] = score_rec(s, ri, now);
		present++;
	}
	return present;
}

const wisp_score_thresholds *wisp_score_thresholds_of(const wisp_score *s)
{
	return &s->p.thresholds;
}

int wisp_score_explain(const wisp_score *s, uint32_t peer, wisp_tstamp now, wisp_score_breakdown *out)
{
	int err;
	uint32_t ri = lookup(s, peer, &err);
	if (ri == NONE)
		return err;
	breakdown(s, ri, now, out);
	return WISP_OK;
}

void wisp_score_get_stats(const wisp_score *s, wisp_score_stats *out)
{
	out->connected = s->connected;
	out->retained = s->retained;
	out->retain_evicted = s->retain_evicted;
	out->decays = s->decays;
}

/* ---- time ---------------------------------------------------------------- */

wisp_tstamp wisp_score_expiry(const wisp_score *s)
{
	return s->next_decay;
}

static double decayed(double v, double factor, uint64_t rounds, double zero)
{
	if (v == 0)
		return 0;
	v *= powi(factor, rounds);
	return v < zero ? 0 : v;
}

int wisp_score_handle_expiry(wisp_score *s, wisp_tstamp now)
{
	if (now < s->next_decay)
		return 0;
	uint64_t rounds = (now - s->next_decay) / s->interval_ns + 1;
	s->next_decay += rounds * s->interval_ns;
	s->decays += rounds;
	double zero = s->p.decay_to_zero;
	for (uint32_t ri = 0; ri < s->n_recs; ri++) {
		struct rec *r = &s->recs[ri];
		if (r->state == REC_RETAINED) {
			if (r->expire <= now) {
				release(s, ri);
				s->retained--;
			}
			/* retained scores do not decay: disconnecting does not
			 * wash a penalty, nor lose a reward */
			continue;
		}
		if (r->state != REC_CONNECTED)
			continue;
		for (uint32_t t = 0; t < s->p.max_topics; t++) {
			const struct topic *tc = &s->topics[t];
			if (!tc->set)
				continue;
			const wisp_score_topic_params *tp = &tc->tp;
			struct tstat *ts = tstat_of(s, ri, t);
			ts->first = decayed(ts->first, tp->first_message_deliveries_decay, rounds, zero);
			ts->mesh = decayed(ts->mesh, tp->mesh_message_deliveries_decay, rounds, zero);
			ts->failure = decayed(ts->failure, tp->mesh_failure_penalty_decay, rounds, zero);
			ts->invalid = decayed(ts->invalid, tp->invalid_message_deliveries_decay, rounds, zero);
		}
		r->behaviour = decayed(r->behaviour, s->p.behaviour_penalty_decay, rounds, zero);
	}
	return rounds > 0x7fffffff ? 0x7fffffff : (int)rounds;
}
