#include "tools/atlas-demo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include <wisp/error.h>

#define PART_MAX (512u * 1024)
#define MAX_HEIGHT 1000000u
#define MAX_CHUNKS 65536u
#define MAX_TXS 1000000u

enum kind { K_TX, K_STATE, K_MANIFEST, K_PARTS, K_PENDING };

/* A response in progress: what comes next, and where it ends. */
typedef struct job {
	struct job *next_job;
	uint64_t ref;
	enum kind kind;
	uint64_t next, end; /* tx list index, height, chunk index, part offset or nonce */
	uint32_t aux;       /* K_PARTS: the chunk; K_PENDING: the sender */
	uint32_t n_txs;
	uint32_t txs[WISP_ATLAS_MAX_IDS];
} job;

struct atlas_demo {
	atlas_demo_cfg cfg;
	uint8_t (*tx_ids)[32];
	uint32_t *tx_index; /* open addressing over tx ids: n + 1, 0 empty */
	uint32_t tx_cap;
	uint8_t (*block_hash)[32]; /* heights 0..height */
	uint8_t (*chunk_hash)[32];
	uint8_t state_root[32];
	job *head, *tail;
	uint32_t waiting;
	uint8_t *scratch;   /* one message */
	uint8_t *data;      /* a chunk's bytes */
	uint32_t data_of;   /* which chunk data holds (UINT32_MAX: none) */
};

static void sha256(const void *p, size_t n, uint8_t out[32])
{
	unsigned int len;
	EVP_Digest(p, n, out, &len, EVP_sha256(), NULL);
}

void atlas_demo_bytes(uint64_t seed, uint8_t *out, size_t n)
{
	uint64_t x = 0x9e3779b97f4a7c15ull * (seed + 1);
	for (size_t k = 0; k < n; k += 8) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(out + k, &x, n - k < 8 ? n - k : 8);
	}
}

void atlas_demo_tx_id(uint32_t n, uint8_t id[32])
{
	char text[48];
	int len = snprintf(text, sizeof(text), "atlas-demo tx %u", n);
	sha256(text, (size_t)len, id);
}

static void pending_id(uint32_t sender, uint64_t nonce, uint8_t id[32])
{
	char text[64];
	int len = snprintf(text, sizeof(text), "atlas-demo pending %u %llu", sender, (unsigned long long)nonce);
	sha256(text, (size_t)len, id);
}

void atlas_demo_cfg_default(atlas_demo_cfg *c)
{
	c->txs = 10000;
	c->height = 1000;
	c->chunks = 64;
	c->chunk_size = 1u << 20;
	c->senders = 16;
	c->pending = 64;
}

const atlas_demo_cfg *atlas_demo_config(const atlas_demo *d)
{
	return &d->cfg;
}

void atlas_demo_block_hash(const atlas_demo *d, uint64_t height, uint8_t hash[32])
{
	memcpy(hash, d->block_hash[height <= d->cfg.height ? height : 0], 32);
}

static uint64_t chunk_seed(uint32_t i)
{
	return 0x100000000ull + i;
}

void atlas_demo_chunk(const atlas_demo *d, uint32_t i, wisp_sync_chunk *out)
{
	memset(out, 0, sizeof(*out));
	out->id_len = (uint32_t)snprintf((char *)out->id, sizeof(out->id), "chunk-%u", i);
	memcpy(out->sha256, d->chunk_hash[i], 32);
	out->size = d->cfg.chunk_size;
}

static uint32_t id_hash(const uint8_t *id)
{
	uint32_t h;
	memcpy(&h, id, 4);
	return h;
}

/* tx number + 1 for id, 0 when unknown */
static uint32_t tx_lookup(const atlas_demo *d, const uint8_t *id, uint32_t len)
{
	if (len != 32)
		return 0;
	for (uint32_t i = id_hash(id) & (d->tx_cap - 1);; i = (i + 1) & (d->tx_cap - 1)) {
		uint32_t v = d->tx_index[i];
		if (!v || !memcmp(d->tx_ids[v - 1], id, 32))
			return v;
	}
}

atlas_demo *atlas_demo_new(const atlas_demo_cfg *c)
{
	if (c->txs > MAX_TXS || c->height > MAX_HEIGHT || c->chunks < 1 || c->chunks > MAX_CHUNKS ||
	    c->chunk_size < 1 || c->chunk_size > WISP_REQRESP_MAX_CHUNK)
		return NULL;
	atlas_demo *d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->cfg = *c;
	d->tx_cap = 16;
	while (d->tx_cap < 2 * c->txs)
		d->tx_cap <<= 1;
	d->tx_ids = calloc(c->txs ? c->txs : 1, 32);
	d->tx_index = calloc(d->tx_cap, sizeof(uint32_t));
	d->block_hash = calloc(c->height + 1, 32);
	d->chunk_hash = calloc(c->chunks, 32);
	d->scratch = malloc(WISP_REQRESP_MAX_CHUNK);
	d->data = malloc(c->chunk_size);
	d->data_of = UINT32_MAX;
	if (!d->tx_ids || !d->tx_index || !d->block_hash || !d->chunk_hash || !d->scratch || !d->data) {
		atlas_demo_free(d);
		return NULL;
	}
	for (uint32_t n = 0; n < c->txs; n++) {
		atlas_demo_tx_id(n, d->tx_ids[n]);
		uint32_t i = id_hash(d->tx_ids[n]) & (d->tx_cap - 1);
		while (d->tx_index[i])
			i = (i + 1) & (d->tx_cap - 1);
		d->tx_index[i] = n + 1;
	}
	sha256("atlas-demo genesis", 18, d->block_hash[0]);
	for (uint64_t h = 1; h <= c->height; h++) {
		uint8_t in[8 + 32];
		memcpy(in, &h, 8);
		memcpy(in + 8, d->block_hash[h - 1], 32);
		uint8_t tagged[16 + sizeof(in)];
		memcpy(tagged, "atlas-demo block", 16);
		memcpy(tagged + 16, in, sizeof(in));
		sha256(tagged, sizeof(tagged), d->block_hash[h]);
	}
	for (uint32_t i = 0; i < c->chunks; i++) {
		atlas_demo_bytes(chunk_seed(i), d->data, c->chunk_size);
		sha256(d->data, c->chunk_size, d->chunk_hash[i]);
	}
	sha256(d->chunk_hash, (size_t)c->chunks * 32, d->state_root);
	return d;
}

void atlas_demo_free(atlas_demo *d)
{
	if (!d)
		return;
	while (d->head) {
		job *j = d->head;
		d->head = j->next_job;
		free(j);
	}
	free(d->tx_ids);
	free(d->tx_index);
	free(d->block_hash);
	free(d->chunk_hash);
	free(d->scratch);
	free(d->data);
	free(d);
}

/* ---- answering ------------------------------------------------------- */

static void refuse(wisp_node *n, uint64_t ref, wisp_rr_result r, const char *why)
{
	(void)wisp_respond(n, ref, r, why, strlen(why), 1);
}

/* The next message of j into d->scratch; returns its length and sets
 * *last, or -1 when j has nothing more. */
static ssize_t next_message(atlas_demo *d, job *j, bool *last)
{
	uint8_t id[32], body[256];
	ssize_t len = -1;
	switch (j->kind) {
	case K_TX: {
		if (j->next >= j->n_txs)
			return -1;
		uint32_t n = j->txs[j->next];
		atlas_demo_tx_id(n, id);
		atlas_demo_bytes(n, body, 64 + n % 192);
		wisp_atlas_tx m = { { id, 32 }, { body, 64 + n % 192 } };
		len = wisp_atlas_tx_encode(&m, d->scratch, WISP_REQRESP_MAX_CHUNK);
		j->next++;
		*last = j->next == j->n_txs;
		break;
	}
	case K_STATE: {
		if (j->next > j->end)
			return -1;
		uint64_t h = j->next;
		atlas_demo_bytes(h, body, sizeof(body));
		wisp_atlas_state_block m = { h, { d->block_hash[h], 32 }, { d->block_hash[h - 1], 32 }, { body, 256 } };
		len = wisp_atlas_state_block_encode(&m, d->scratch, WISP_REQRESP_MAX_CHUNK);
		j->next++;
		*last = j->next > j->end;
		break;
	}
	case K_MANIFEST: {
		if (j->next >= j->end)
			return -1;
		/* as many refs as fit one message */
		wisp_atlas_chunk_ref refs[1024];
		wisp_sync_chunk ch[1024];
		uint32_t k = 0;
		wisp_atlas_checkpoint_manifest m = { d->cfg.height, { d->state_root, 32 }, 0, { NULL, 0 } };
		while (j->next + k < j->end && k < 1024) {
			atlas_demo_chunk(d, (uint32_t)(j->next + k), &ch[k]);
			refs[k] = (wisp_atlas_chunk_ref){ { ch[k].id, ch[k].id_len }, { ch[k].sha256, 32 }, ch[k].size };
			k++;
		}
		len = wisp_atlas_checkpoint_manifest_encode(&m, refs, k, d->scratch, WISP_REQRESP_MAX_CHUNK);
		j->next += k;
		*last = j->next >= j->end;
		break;
	}
	case K_PARTS: {
		if (j->next >= d->cfg.chunk_size)
			return -1;
		if (d->data_of != j->aux) {
			atlas_demo_bytes(chunk_seed(j->aux), d->data, d->cfg.chunk_size);
			d->data_of = j->aux;
		}
		uint32_t n = d->cfg.chunk_size - (uint32_t)j->next < PART_MAX ? d->cfg.chunk_size - (uint32_t)j->next
									      : PART_MAX;
		wisp_atlas_checkpoint_part m = { j->next, { d->data + j->next, n } };
		len = wisp_atlas_checkpoint_part_encode(&m, d->scratch, WISP_REQRESP_MAX_CHUNK);
		j->next += n;
		*last = j->next >= d->cfg.chunk_size;
		break;
	}
	case K_PENDING: {
		if (j->next > j->end)
			return -1;
		char sender[32];
		int sl = snprintf(sender, sizeof(sender), "sender-%u", j->aux);
		pending_id(j->aux, j->next, id);
		atlas_demo_bytes(j->aux * 100000ull + j->next, body, 100);
		wisp_atlas_pending_tx m = { { (const uint8_t *)sender, (uint32_t)sl }, j->next, { id, 32 }, { body, 100 } };
		len = wisp_atlas_pending_tx_encode(&m, d->scratch, WISP_REQRESP_MAX_CHUNK);
		j->next++;
		*last = j->next > j->end;
		break;
	}
	}
	return len;
}

/* Send what j has, as far as the node takes it. True when j is done. */
static bool run(atlas_demo *d, wisp_node *n, job *j)
{
	for (;;) {
		job saved = *j;
		bool last = false;
		ssize_t len = next_message(d, j, &last);
		if (len < 0) {
			(void)wisp_respond_end(n, j->ref);
			return true;
		}
		int rc = wisp_respond(n, j->ref, WISP_RR_SUCCESS, d->scratch, (size_t)len, last);
		if (rc == WISP_ERR_AGAIN) {
			*j = saved; /* the same message again later */
			return false;
		}
		if (rc != WISP_OK || last)
			return true; /* sent in full, or the request is gone */
	}
}

static job *new_job(uint64_t ref, enum kind k)
{
	job *j = calloc(1, sizeof(*j));
	if (j) {
		j->ref = ref;
		j->kind = k;
	}
	return j;
}

/* The job for a request, or NULL when it was answered at once. */
static job *plan(atlas_demo *d, wisp_node *n, const wisp_request_info *ri, int proto)
{
	const uint8_t *p = ri->data;
	size_t len = ri->len;
	int err;
	job *j = NULL;
	switch (proto) {
	case WISP_ATLAS_TX: {
		wisp_atlas_tx_request m;
		if ((err = wisp_atlas_tx_request_decode(p, len, &m)))
			break;
		if (!(j = new_job(ri->ref, K_TX)))
			return NULL;
		for (uint32_t i = 0; i < m.n_ids; i++) {
			uint32_t v = tx_lookup(d, m.ids[i].p, m.ids[i].len);
			if (v)
				j->txs[j->n_txs++] = v - 1;
		}
		return j;
	}
	case WISP_ATLAS_STATE: {
		wisp_atlas_state_request m;
		if ((err = wisp_atlas_state_request_decode(p, len, &m)))
			break;
		if (m.height > d->cfg.height || m.last_hash.len != 32 ||
		    memcmp(m.last_hash.p, d->block_hash[m.height], 32)) {
			refuse(n, ri->ref, WISP_RR_INVALID_REQUEST, "unknown height or hash");
			return NULL;
		}
		if (!(j = new_job(ri->ref, K_STATE)))
			return NULL;
		j->next = m.height + 1;
		j->end = m.height + m.max_blocks < d->cfg.height ? m.height + m.max_blocks : d->cfg.height;
		return j;
	}
	case WISP_ATLAS_CHECKPOINT: {
		wisp_atlas_checkpoint_request m;
		if ((err = wisp_atlas_checkpoint_request_decode(p, len, &m)))
			break;
		if (m.height != d->cfg.height) {
			refuse(n, ri->ref, WISP_RR_UNAVAILABLE, "no checkpoint at that height");
			return NULL;
		}
		if (!m.chunk_id.len) {
			if ((j = new_job(ri->ref, K_MANIFEST)))
				j->end = d->cfg.chunks;
			return j;
		}
		char text[WISP_ATLAS_MAX_HASH + 1];
		memcpy(text, m.chunk_id.p, m.chunk_id.len);
		text[m.chunk_id.len] = 0;
		unsigned i;
		char extra;
		if (sscanf(text, "chunk-%u%c", &i, &extra) != 1 || i >= d->cfg.chunks) {
			refuse(n, ri->ref, WISP_RR_INVALID_REQUEST, "no such chunk");
			return NULL;
		}
		if ((j = new_job(ri->ref, K_PARTS)))
			j->aux = i;
		return j;
	}
	case WISP_ATLAS_PENDING: {
		wisp_atlas_pending_request m;
		if ((err = wisp_atlas_pending_request_decode(p, len, &m)))
			break;
		char text[WISP_ATLAS_MAX_HASH + 1];
		memcpy(text, m.sender.p, m.sender.len);
		text[m.sender.len] = 0;
		unsigned k;
		char extra;
		if (sscanf(text, "sender-%u%c", &k, &extra) != 1 || k >= d->cfg.senders || m.nonce_from >= d->cfg.pending) {
			(void)wisp_respond_end(n, ri->ref); /* nothing pending */
			return NULL;
		}
		if (!(j = new_job(ri->ref, K_PENDING)))
			return NULL;
		j->aux = k;
		j->next = m.nonce_from;
		uint64_t end = m.nonce_to < d->cfg.pending - 1 ? m.nonce_to : d->cfg.pending - 1;
		j->end = end - m.nonce_from + 1 > m.max ? m.nonce_from + m.max - 1 : end;
		return j;
	}
	default:
		return NULL;
	}
	char why[96];
	snprintf(why, sizeof(why), "invalid request: %s", wisp_strerror(err));
	refuse(n, ri->ref, WISP_RR_INVALID_REQUEST, why);
	return NULL;
}

bool atlas_demo_request(atlas_demo *d, wisp_node *n, const wisp_request_info *ri)
{
	static const char *const ids[WISP_ATLAS_PROTOCOLS] = { WISP_ATLAS_PROTO_TX, WISP_ATLAS_PROTO_STATE,
							      WISP_ATLAS_PROTO_CHECKPOINT, WISP_ATLAS_PROTO_PENDING };
	int proto = -1;
	for (int i = 0; i < WISP_ATLAS_PROTOCOLS; i++)
		if (!strcmp(ri->protocol, ids[i]))
			proto = i;
	if (proto < 0)
		return false;
	job *j = plan(d, n, ri, proto);
	if (!j)
		return true;
	/* behind the responses that wait, or at once when none does */
	if (!d->head && run(d, n, j)) {
		free(j);
		return true;
	}
	if (d->tail)
		d->tail->next_job = j;
	else
		d->head = j;
	d->tail = j;
	d->waiting++;
	return true;
}

uint32_t atlas_demo_pump(atlas_demo *d, wisp_node *n)
{
	while (d->head && run(d, n, d->head)) {
		job *j = d->head;
		d->head = j->next_job;
		if (!d->head)
			d->tail = NULL;
		free(j);
		d->waiting--;
	}
	return d->waiting;
}
