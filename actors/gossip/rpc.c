#include "actors/gossip/rpc.h"

#include <string.h>

#include <wisp/error.h>

#include "codec/pb.h"
#include "codec/varint.h"
#include "runtime/mem.h"

void wisp_gs_limits_default(wisp_gs_limits *l)
{
	l->max_rpc = (1u << 20) + (64u << 10);
	l->max_subs = 256;
	l->max_messages = 128;
	l->max_message = 1u << 20;
	l->max_ihave = 128;
	l->max_iwant = 128;
	l->max_ids = 5000;
	l->max_graft = 128;
	l->max_prune = 128;
	l->max_px = 64;
	l->max_idontwant = 128;
	l->max_topic = 256;
	l->max_id = 128;
}

int wisp_gs_limits_check(const wisp_gs_limits *l)
{
	const uint32_t counts[] = { l->max_subs,  l->max_messages, l->max_ihave,
				    l->max_iwant, l->max_ids,      l->max_graft,
				    l->max_prune, l->max_px,       l->max_idontwant };
	for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++)
		if (counts[i] == 0 || counts[i] > (1u << 20))
			return WISP_ERR_INVALID_ARG;
	if (!l->max_rpc || !l->max_message || !l->max_topic || !l->max_id ||
	    l->max_message > l->max_rpc || l->max_rpc > (1u << 30))
		return WISP_ERR_INVALID_ARG;
	return 0;
}

/* ---- allocation ----------------------------------------------------------------- */

static size_t align8(size_t n)
{
	return (n + 7) & ~(size_t)7;
}

int wisp_gs_rpc_new(wisp_gs_rpc **out, const wisp_mem *mem, const wisp_gs_limits *lim)
{
	wisp_gs_limits l;
	*out = NULL;
	if (lim)
		l = *lim;
	else
		wisp_gs_limits_default(&l);
	if (wisp_gs_limits_check(&l))
		return WISP_ERR_INVALID_ARG;

	size_t sz[] = {
		align8(sizeof(wisp_gs_rpc)),
		align8((size_t)l.max_subs * sizeof(wisp_gs_subopt)),
		align8((size_t)l.max_messages * sizeof(wisp_gs_message)),
		align8((size_t)l.max_ihave * sizeof(wisp_gs_ihave)),
		align8((size_t)l.max_iwant * sizeof(wisp_gs_range)),
		align8((size_t)l.max_graft * sizeof(wisp_gs_bytes)),
		align8((size_t)l.max_prune * sizeof(wisp_gs_prune)),
		align8((size_t)l.max_idontwant * sizeof(wisp_gs_range)),
		align8((size_t)l.max_ids * sizeof(wisp_gs_bytes)),
		align8((size_t)l.max_px * sizeof(wisp_gs_peer_info)),
	};
	size_t total = 0;
	for (size_t i = 0; i < sizeof(sz) / sizeof(sz[0]); i++)
		total += sz[i];
	uint8_t *p = wisp_calloc(mem, 1, total);
	if (!p)
		return WISP_ERR_NOMEM;
	wisp_gs_rpc *r = (wisp_gs_rpc *)p;
	size_t off = sz[0];
	r->subs = (wisp_gs_subopt *)(p + off), off += sz[1];
	r->msgs = (wisp_gs_message *)(p + off), off += sz[2];
	r->ihave = (wisp_gs_ihave *)(p + off), off += sz[3];
	r->iwant = (wisp_gs_range *)(p + off), off += sz[4];
	r->graft = (wisp_gs_bytes *)(p + off), off += sz[5];
	r->prune = (wisp_gs_prune *)(p + off), off += sz[6];
	r->idontwant = (wisp_gs_range *)(p + off), off += sz[7];
	r->ids = (wisp_gs_bytes *)(p + off), off += sz[8];
	r->px = (wisp_gs_peer_info *)(p + off);
	r->lim = l;
	r->mem = mem;
	*out = r;
	return 0;
}

void wisp_gs_rpc_free(wisp_gs_rpc *rpc)
{
	if (rpc)
		wisp_free(rpc->mem, rpc);
}

void wisp_gs_rpc_clear(wisp_gs_rpc *rpc)
{
	rpc->n_subs = rpc->n_msgs = rpc->n_ihave = rpc->n_iwant = rpc->n_graft = 0;
	rpc->n_prune = rpc->n_idontwant = rpc->n_ids = rpc->n_px = 0;
	rpc->has_control = false;
}

/* ---- decoding ------------------------------------------------------------------- */

/* One walk over the RPC. Pass 1 (fill false) checks structure, wire types,
 * lengths and counts, stopping at the first count over its limit; pass 2
 * (fill true) runs over input pass 1 accepted and writes the entries, using
 * the counters as cursors. */
struct dec {
	wisp_gs_rpc *r;
	bool fill;
	uint32_t subs, msgs, ihave, iwant, graft, prune, idw, px;
	uint32_t ids_ihave, ids_iwant, ids_idw; /* pass 1: counts; pass 2: cursors */
};

static wisp_gs_bytes slice(const uint8_t *p, size_t n)
{
	wisp_gs_bytes b = { n ? p : NULL, (uint32_t)n };
	return b;
}

/* Counts one more entry against max; TOO_LARGE past it (pass 1 only: pass 2
 * sees the same input). */
static int count(const struct dec *d, uint32_t *c, uint32_t max)
{
	if (!d->fill && *c >= max)
		return WISP_ERR_TOO_LARGE;
	(*c)++;
	return 0;
}

static int len_field(const wisp_pb_field *f, size_t max)
{
	if (f->wire != WISP_PB_LEN)
		return WISP_ERR_WIRE_TYPE;
	return f->len > max ? WISP_ERR_TOO_LARGE : 0;
}

static int dec_message(wisp_gs_message *m, const uint8_t *p, size_t n, const wisp_gs_limits *lim)
{
	wisp_pb_reader rd;
	wisp_pb_field f;
	int rc;

	if (m) {
		memset(m, 0, sizeof(*m));
		m->raw = slice(p, n);
	}
	wisp_pb_reader_init(&rd, p, n);
	while ((rc = wisp_pb_next(&rd, &f, SIZE_MAX)) == 1) {
		size_t max;
		bool *has = NULL;
		wisp_gs_bytes *dst = NULL;
		switch (f.num) {
		case 1: max = WISP_GS_MAX_FROM; if (m) has = &m->has_from, dst = &m->from; break;
		case 2: max = lim->max_message; if (m) has = &m->has_data, dst = &m->data; break;
		case 3: max = WISP_GS_MAX_SEQNO; if (m) has = &m->has_seqno, dst = &m->seqno; break;
		case 4: max = lim->max_topic; if (m) has = &m->has_topic, dst = &m->topic; break;
		case 5: max = WISP_GS_MAX_SIGNATURE; if (m) has = &m->has_signature, dst = &m->signature; break;
		case 6: max = WISP_GS_MAX_KEY; if (m) has = &m->has_key, dst = &m->key; break;
		default: continue; /* unknown field: skipped */
		}
		if ((rc = len_field(&f, max)))
			return rc;
		if (m) {
			*has = true;
			*dst = slice(f.data, f.len);
		}
	}
	return rc;
}

int wisp_gs_message_decode(wisp_gs_message *m, const uint8_t *p, size_t n,
			   const wisp_gs_limits *lim)
{
	int rc = dec_message(m, p, n, lim);
	if (rc)
		memset(m, 0, sizeof(*m));
	return rc;
}

static int dec_subopt(struct dec *d, const uint8_t *p, size_t n)
{
	wisp_gs_subopt *s = d->fill ? &d->r->subs[d->subs] : NULL;
	wisp_pb_reader rd;
	wisp_pb_field f;
	int rc;

	if ((rc = count(d, &d->subs, d->r->lim.max_subs)))
		return rc;
	if (s)
		memset(s, 0, sizeof(*s));
	wisp_pb_reader_init(&rd, p, n);
	while ((rc = wisp_pb_next(&rd, &f, SIZE_MAX)) == 1) {
		if (f.num == 1) {
			if ((rc = wisp_pb_expect(&f, WISP_PB_VARINT)))
				return rc;
			if (s)
				s->subscribe = f.u64 != 0;
		} else if (f.num == 2) {
			if ((rc = len_field(&f, d->r->lim.max_topic)))
				return rc;
			if (s)
				s->topic = slice(f.data, f.len);
		}
	}
	return rc;
}

/* Message ids of an IHAVE (field 2), IWANT or IDONTWANT (field 1): counted
 * in *c (pass 1) or written at cursor *c (pass 2). */
static int dec_ids(struct dec *d, const uint8_t *p, size_t n, uint32_t id_field,
		   uint32_t topic_field, wisp_gs_bytes *topic, uint32_t *c, wisp_gs_range *range)
{
	const wisp_gs_limits *lim = &d->r->lim;
	wisp_pb_reader rd;
	wisp_pb_field f;
	int rc;

	if (range) {
		range->first = *c;
		range->n = 0;
	}
	if (topic)
		*topic = slice(NULL, 0);
	wisp_pb_reader_init(&rd, p, n);
	while ((rc = wisp_pb_next(&rd, &f, SIZE_MAX)) == 1) {
		if (f.num == id_field) {
			if ((rc = len_field(&f, lim->max_id)))
				return rc;
			if (!d->fill) {
				if (d->ids_ihave + d->ids_iwant + d->ids_idw >= lim->max_ids)
					return WISP_ERR_TOO_LARGE;
				(*c)++;
			} else {
				d->r->ids[(*c)++] = slice(f.data, f.len);
				range->n++;
			}
		} else if (topic_field && f.num == topic_field) {
			if ((rc = len_field(&f, lim->max_topic)))
				return rc;
			if (topic)
				*topic = slice(f.data, f.len);
		}
	}
	return rc;
}

static int dec_topic_only(struct dec *d, const uint8_t *p, size_t n, wisp_gs_bytes *topic)
{
	wisp_pb_reader rd;
	wisp_pb_field f;
	int rc;

	if (topic)
		*topic = slice(NULL, 0);
	wisp_pb_reader_init(&rd, p, n);
	while ((rc = wisp_pb_next(&rd, &f, SIZE_MAX)) == 1) {
		if (f.num != 1)
			continue;
		if ((rc = len_field(&f, d->r->lim.max_topic)))
			return rc;
		if (topic)
			*topic = slice(f.data, f.len);
	}
	return rc;
}

static int dec_peer_info(struct dec *d, const uint8_t *p, size_t n)
{
	wisp_gs_peer_info *pi = d->fill ? &d->r->px[d->px] : NULL;
	wisp_pb_reader rd;
	wisp_pb_field f;
	int rc;

	if ((rc = count(d, &d->px, d->r->lim.max_px)))
		return rc;
	if (pi)
		memset(pi, 0, sizeof(*pi));
	wisp_pb_reader_init(&rd, p, n);
	while ((rc = wisp_pb_next(&rd, &f, SIZE_MAX)) == 1) {
		if (f.num == 1) {
			if ((rc = len_field(&f, WISP_GS_MAX_FROM)))
				return rc;
			if (pi)
				pi->peer_id = slice(f.data, f.len);
		} else if (f.num == 2) {
			if ((rc = len_field(&f, WISP_GS_MAX_PEER_RECORD)))
				return rc;
			if (pi) {
				pi->has_record = true;
				pi->record = slice(f.data, f.len);
			}
		}
	}
	return rc;
}

static int dec_prune(struct dec *d, const uint8_t *p, size_t n)
{
	wisp_gs_prune *pr = d->fill ? &d->r->prune[d->prune] : NULL;
	wisp_pb_reader rd;
	wisp_pb_field f;
	int rc;

	if ((rc = count(d, &d->prune, d->r->lim.max_prune)))
		return rc;
	if (pr) {
		memset(pr, 0, sizeof(*pr));
		pr->px.first = d->px;
	}
	wisp_pb_reader_init(&rd, p, n);
	while ((rc = wisp_pb_next(&rd, &f, SIZE_MAX)) == 1) {
		switch (f.num) {
		case 1:
			if ((rc = len_field(&f, d->r->lim.max_topic)))
				return rc;
			if (pr)
				pr->topic = slice(f.data, f.len);
			break;
		case 2:
			if ((rc = wisp_pb_expect(&f, WISP_PB_LEN)) || (rc = dec_peer_info(d, f.data, f.len)))
				return rc;
			if (pr)
				pr->px.n++;
			break;
		case 3:
			if ((rc = wisp_pb_expect(&f, WISP_PB_VARINT)))
				return rc;
			if (pr) {
				pr->has_backoff = true;
				pr->backoff = f.u64;
			}
			break;
		default:
			break;
		}
	}
	return rc;
}

static int dec_control(struct dec *d, const uint8_t *p, size_t n)
{
	wisp_gs_rpc *r = d->r;
	const wisp_gs_limits *lim = &r->lim;
	wisp_pb_reader rd;
	wisp_pb_field f;
	int rc;

	wisp_pb_reader_init(&rd, p, n);
	while ((rc = wisp_pb_next(&rd, &f, SIZE_MAX)) == 1) {
		if (f.num < 1 || f.num > 5)
			continue;
		if ((rc = wisp_pb_expect(&f, WISP_PB_LEN)))
			return rc;
		switch (f.num) {
		case 1: {
			wisp_gs_ihave *ih = d->fill ? &r->ihave[d->ihave] : NULL;
			if ((rc = count(d, &d->ihave, lim->max_ihave)))
				return rc;
			rc = dec_ids(d, f.data, f.len, 2, 1, ih ? &ih->topic : NULL, &d->ids_ihave,
				     ih ? &ih->ids : NULL);
			break;
		}
		case 2: {
			wisp_gs_range *iw = d->fill ? &r->iwant[d->iwant] : NULL;
			if ((rc = count(d, &d->iwant, lim->max_iwant)))
				return rc;
			rc = dec_ids(d, f.data, f.len, 1, 0, NULL, &d->ids_iwant, iw);
			break;
		}
		case 3: {
			wisp_gs_bytes *g = d->fill ? &r->graft[d->graft] : NULL;
			if ((rc = count(d, &d->graft, lim->max_graft)))
				return rc;
			rc = dec_topic_only(d, f.data, f.len, g);
			break;
		}
		case 4:
			rc = dec_prune(d, f.data, f.len);
			break;
		case 5: {
			wisp_gs_range *dw = d->fill ? &r->idontwant[d->idw] : NULL;
			if ((rc = count(d, &d->idw, lim->max_idontwant)))
				return rc;
			rc = dec_ids(d, f.data, f.len, 1, 0, NULL, &d->ids_idw, dw);
			break;
		}
		}
		if (rc)
			return rc;
	}
	return rc;
}

static int walk_rpc(struct dec *d, const uint8_t *p, size_t n)
{
	wisp_gs_rpc *r = d->r;
	wisp_pb_reader rd;
	wisp_pb_field f;
	int rc;

	wisp_pb_reader_init(&rd, p, n);
	while ((rc = wisp_pb_next(&rd, &f, SIZE_MAX)) == 1) {
		if (f.num < 1 || f.num > 3)
			continue;
		if ((rc = wisp_pb_expect(&f, WISP_PB_LEN)))
			return rc;
		switch (f.num) {
		case 1:
			rc = dec_subopt(d, f.data, f.len);
			break;
		case 2: {
			wisp_gs_message *m = d->fill ? &r->msgs[d->msgs] : NULL;
			if ((rc = count(d, &d->msgs, r->lim.max_messages)))
				return rc;
			rc = dec_message(m, f.data, f.len, &r->lim);
			break;
		}
		case 3:
			r->has_control = true;
			rc = dec_control(d, f.data, f.len);
			break;
		}
		if (rc)
			return rc;
	}
	return rc;
}

int wisp_gs_rpc_decode(wisp_gs_rpc *rpc, const uint8_t *p, size_t n)
{
	wisp_gs_rpc_clear(rpc);
	if (n > rpc->lim.max_rpc)
		return WISP_ERR_TOO_LARGE;

	struct dec d = { .r = rpc, .fill = false };
	int rc = walk_rpc(&d, p, n);
	if (rc) {
		wisp_gs_rpc_clear(rpc);
		return rc;
	}
	rpc->n_subs = d.subs;
	rpc->n_msgs = d.msgs;
	rpc->n_ihave = d.ihave;
	rpc->n_iwant = d.iwant;
	rpc->n_graft = d.graft;
	rpc->n_prune = d.prune;
	rpc->n_idontwant = d.idw;
	rpc->n_px = d.px;
	rpc->n_ids = d.ids_ihave + d.ids_iwant + d.ids_idw;

	struct dec e = { .r = rpc, .fill = true };
	e.ids_iwant = d.ids_ihave;
	e.ids_idw = d.ids_ihave + d.ids_iwant;
	rc = walk_rpc(&e, p, n);
	if (rc || e.subs != d.subs || e.msgs != d.msgs || e.px != d.px) {
		/* pass 1 accepted this input: the second walk cannot differ */
		wisp_gs_rpc_clear(rpc);
		return rc ? rc : WISP_ERR_INTERNAL;
	}
	return 0;
}

/* ---- encoding ------------------------------------------------------------------- */

static size_t lenf(uint32_t num, size_t len)
{
	return wisp_pb_bytes_size(num, len);
}

/* Key and length of a nested message whose content follows. */
static void put_header(wisp_pb_writer *w, uint32_t num, size_t len)
{
	uint64_t key = (uint64_t)num << 3 | WISP_PB_LEN;
	size_t need = wisp_pbvarint_len(key) + wisp_pbvarint_len(len);
	if (w->err)
		return;
	if (need > w->cap - w->len) {
		w->err = WISP_ERR_NOBUF;
		return;
	}
	w->len += wisp_pbvarint_put(w->buf + w->len, key);
	w->len += wisp_pbvarint_put(w->buf + w->len, len);
}

static void put_b(wisp_pb_writer *w, uint32_t num, wisp_gs_bytes b)
{
	wisp_pb_put_bytes(w, num, b.data, b.len);
}

size_t wisp_gs_message_size(const wisp_gs_message *m, bool with_sig_key)
{
	size_t n = 0;
	if (m->has_from)
		n += lenf(1, m->from.len);
	if (m->has_data)
		n += lenf(2, m->data.len);
	if (m->has_seqno)
		n += lenf(3, m->seqno.len);
	if (m->has_topic)
		n += lenf(4, m->topic.len);
	if (with_sig_key && m->has_signature)
		n += lenf(5, m->signature.len);
	if (with_sig_key && m->has_key)
		n += lenf(6, m->key.len);
	return n;
}

static void put_message(wisp_pb_writer *w, const wisp_gs_message *m, bool with_sig_key)
{
	if (m->has_from)
		put_b(w, 1, m->from);
	if (m->has_data)
		put_b(w, 2, m->data);
	if (m->has_seqno)
		put_b(w, 3, m->seqno);
	if (m->has_topic)
		put_b(w, 4, m->topic);
	if (with_sig_key && m->has_signature)
		put_b(w, 5, m->signature);
	if (with_sig_key && m->has_key)
		put_b(w, 6, m->key);
}

ssize_t wisp_gs_message_encode(const wisp_gs_message *m, bool with_sig_key, uint8_t *out,
			       size_t cap)
{
	wisp_pb_writer w;
	wisp_pb_writer_init(&w, out, cap);
	put_message(&w, m, with_sig_key);
	return wisp_pb_writer_finish(&w);
}

static size_t msg_wire_size(const wisp_gs_message *m)
{
	return m->raw.data ? m->raw.len : wisp_gs_message_size(m, true);
}

static size_t subopt_size(const wisp_gs_subopt *s)
{
	return wisp_pb_varint_size(1, s->subscribe) + lenf(2, s->topic.len);
}

static size_t ids_size(const wisp_gs_rpc *r, wisp_gs_range g, uint32_t num)
{
	size_t n = 0;
	for (uint32_t i = 0; i < g.n; i++)
		n += lenf(num, r->ids[g.first + i].len);
	return n;
}

static size_t ihave_size(const wisp_gs_rpc *r, const wisp_gs_ihave *ih)
{
	return lenf(1, ih->topic.len) + ids_size(r, ih->ids, 2);
}

static size_t peer_info_size(const wisp_gs_peer_info *pi)
{
	return lenf(1, pi->peer_id.len) + (pi->has_record ? lenf(2, pi->record.len) : 0);
}

static size_t prune_size(const wisp_gs_rpc *r, const wisp_gs_prune *pr)
{
	size_t n = lenf(1, pr->topic.len);
	for (uint32_t i = 0; i < pr->px.n; i++)
		n += lenf(2, peer_info_size(&r->px[pr->px.first + i]));
	if (pr->has_backoff)
		n += wisp_pb_varint_size(3, pr->backoff);
	return n;
}

static bool control_present(const wisp_gs_rpc *r)
{
	return r->has_control || r->n_ihave || r->n_iwant || r->n_graft || r->n_prune ||
	       r->n_idontwant;
}

static size_t control_size(const wisp_gs_rpc *r)
{
	size_t n = 0;
	for (uint32_t i = 0; i < r->n_ihave; i++)
		n += lenf(1, ihave_size(r, &r->ihave[i]));
	for (uint32_t i = 0; i < r->n_iwant; i++)
		n += lenf(2, ids_size(r, r->iwant[i], 1));
	for (uint32_t i = 0; i < r->n_graft; i++)
		n += lenf(3, lenf(1, r->graft[i].len));
	for (uint32_t i = 0; i < r->n_prune; i++)
		n += lenf(4, prune_size(r, &r->prune[i]));
	for (uint32_t i = 0; i < r->n_idontwant; i++)
		n += lenf(5, ids_size(r, r->idontwant[i], 1));
	return n;
}

size_t wisp_gs_rpc_size(const wisp_gs_rpc *r)
{
	size_t n = 0;
	for (uint32_t i = 0; i < r->n_subs; i++)
		n += lenf(1, subopt_size(&r->subs[i]));
	for (uint32_t i = 0; i < r->n_msgs; i++)
		n += lenf(2, msg_wire_size(&r->msgs[i]));
	if (control_present(r))
		n += lenf(3, control_size(r));
	return n;
}

static void put_ids(wisp_pb_writer *w, const wisp_gs_rpc *r, wisp_gs_range g, uint32_t num)
{
	for (uint32_t i = 0; i < g.n; i++)
		put_b(w, num, r->ids[g.first + i]);
}

static void put_rpc(wisp_pb_writer *w, const wisp_gs_rpc *r)
{
	for (uint32_t i = 0; i < r->n_subs; i++) {
		const wisp_gs_subopt *s = &r->subs[i];
		put_header(w, 1, subopt_size(s));
		wisp_pb_put_varint(w, 1, s->subscribe);
		put_b(w, 2, s->topic);
	}
	for (uint32_t i = 0; i < r->n_msgs; i++) {
		const wisp_gs_message *m = &r->msgs[i];
		if (m->raw.data) {
			put_b(w, 2, m->raw);
		} else {
			put_header(w, 2, wisp_gs_message_size(m, true));
			put_message(w, m, true);
		}
	}
	if (!control_present(r))
		return;
	put_header(w, 3, control_size(r));
	for (uint32_t i = 0; i < r->n_ihave; i++) {
		const wisp_gs_ihave *ih = &r->ihave[i];
		put_header(w, 1, ihave_size(r, ih));
		put_b(w, 1, ih->topic);
		put_ids(w, r, ih->ids, 2);
	}
	for (uint32_t i = 0; i < r->n_iwant; i++) {
		put_header(w, 2, ids_size(r, r->iwant[i], 1));
		put_ids(w, r, r->iwant[i], 1);
	}
	for (uint32_t i = 0; i < r->n_graft; i++) {
		put_header(w, 3, lenf(1, r->graft[i].len));
		put_b(w, 1, r->graft[i]);
	}
	for (uint32_t i = 0; i < r->n_prune; i++) {
		const wisp_gs_prune *pr = &r->prune[i];
		put_header(w, 4, prune_size(r, pr));
		put_b(w, 1, pr->topic);
		for (uint32_t k = 0; k < pr->px.n; k++) {
			const wisp_gs_peer_info *pi = &r->px[pr->px.first + k];
			put_header(w, 2, peer_info_size(pi));
			put_b(w, 1, pi->peer_id);
			if (pi->has_record)
				put_b(w, 2, pi->record);
		}
		if (pr->has_backoff)
			wisp_pb_put_varint(w, 3, pr->backoff);
	}
	for (uint32_t i = 0; i < r->n_idontwant; i++) {
		put_header(w, 5, ids_size(r, r->idontwant[i], 1));
		put_ids(w, r, r->idontwant[i], 1);
	}
}

ssize_t wisp_gs_rpc_encode(const wisp_gs_rpc *rpc, uint8_t *out, size_t cap)
{
	wisp_pb_writer w;
	wisp_pb_writer_init(&w, out, cap);
	put_rpc(&w, rpc);
	return wisp_pb_writer_finish(&w);
}

int wisp_gs_rpc_frame(const wisp_gs_rpc *rpc, wisp_pool *pool, wisp_buf **out)
{
	size_t n = wisp_gs_rpc_size(rpc);
	size_t pre = wisp_uvarint_len(n);
	*out = NULL;
	wisp_buf *b = wisp_buf_alloc(pool, pre + n);
	if (!b)
		return WISP_ERR_NOMEM;
	wisp_uvarint_put(b->data, n);
	ssize_t w = wisp_gs_rpc_encode(rpc, b->data + pre, n);
	if (w != (ssize_t)n) {
		wisp_buf_unref(b);
		return WISP_ERR_INTERNAL;
	}
	*out = b;
	return 0;
}

int wisp_gs_publish_frame(const wisp_gs_message *m, wisp_pool *pool, wisp_buf **out,
			  size_t *msg_off)
{
	size_t mlen = msg_wire_size(m);
	size_t rpc_len = lenf(2, mlen);
	size_t pre = wisp_uvarint_len(rpc_len);
	*out = NULL;
	wisp_buf *b = wisp_buf_alloc(pool, pre + rpc_len);
	if (!b)
		return WISP_ERR_NOMEM;
	wisp_pb_writer w;
	size_t off = wisp_uvarint_put(b->data, rpc_len);
	wisp_pb_writer_init(&w, b->data + off, rpc_len);
	put_header(&w, 2, mlen);
	size_t moff = off + w.len;
	if (m->raw.data) {
		if (w.cap - w.len < mlen)
			w.err = WISP_ERR_NOBUF;
		else {
			memcpy(w.buf + w.len, m->raw.data, mlen);
			w.len += mlen;
		}
	} else {
		put_message(&w, m, true);
	}
	if (w.err || w.len != rpc_len) {
		wisp_buf_unref(b);
		return WISP_ERR_INTERNAL;
	}
	if (msg_off)
		*msg_off = moff;
	*out = b;
	return 0;
}

/* ---- signatures ----------------------------------------------------------------- */

size_t wisp_gs_sign_bytes_size(const wisp_gs_message *m)
{
	return WISP_GS_SIGN_PREFIX_LEN + wisp_gs_message_size(m, false);
}

ssize_t wisp_gs_sign_bytes(const wisp_gs_message *m, uint8_t *out, size_t cap)
{
	if (!out || cap < wisp_gs_sign_bytes_size(m))
		return WISP_ERR_NOBUF;
	memcpy(out, WISP_GS_SIGN_PREFIX, WISP_GS_SIGN_PREFIX_LEN);
	ssize_t n = wisp_gs_message_encode(m, false, out + WISP_GS_SIGN_PREFIX_LEN,
					   cap - WISP_GS_SIGN_PREFIX_LEN);
	return n < 0 ? n : n + WISP_GS_SIGN_PREFIX_LEN;
}

ssize_t wisp_gs_sign(const wisp_gs_message *m, const wisp_privkey *key, uint8_t *scratch,
		     size_t scratch_cap, uint8_t *sig, size_t cap)
{
	ssize_t n = wisp_gs_sign_bytes(m, scratch, scratch_cap);
	if (n < 0)
		return n;
	return wisp_privkey_sign(key, scratch, (size_t)n, sig, cap);
}

int wisp_gs_verify(const wisp_gs_message *m, uint8_t *scratch, size_t scratch_cap)
{
	wisp_peer_id id;
	wisp_pubkey pub, inl;
	int rc;

	if (!m->has_from || !m->has_seqno || !m->has_signature ||
	    m->seqno.len != WISP_GS_SEQNO_LEN)
		return WISP_ERR_MALFORMED;
	if (wisp_peer_id_from_bytes(&id, m->from.data, m->from.len))
		return WISP_ERR_PEER_ID;
	if (m->has_key) {
		if ((rc = wisp_pubkey_decode(&pub, m->key.data, m->key.len)))
			return rc == WISP_ERR_UNKNOWN_CODE || rc == WISP_ERR_CRYPTO ? rc
										  : WISP_ERR_BAD_KEY;
		rc = wisp_peer_id_pubkey(&id, &inl);
		if (rc == 0) {
			if (!wisp_pubkey_equal(&pub, &inl))
				return WISP_ERR_PEER_ID;
		} else {
			/* a hashed id (or an id of another key type): the key must
			 * hash to it */
			wisp_peer_id kid;
			if (wisp_peer_id_from_pubkey(&kid, &pub) || !wisp_peer_id_equal(&kid, &id))
				return WISP_ERR_PEER_ID;
		}
	} else {
		rc = wisp_peer_id_pubkey(&id, &pub);
		if (rc == WISP_ERR_NOTFOUND || rc == WISP_ERR_MALFORMED || rc == WISP_ERR_INVALID_ARG)
			return WISP_ERR_PEER_ID;
		if (rc)
			return rc == WISP_ERR_UNKNOWN_CODE || rc == WISP_ERR_CRYPTO ? rc
										  : WISP_ERR_BAD_KEY;
	}
	ssize_t n = wisp_gs_sign_bytes(m, scratch, scratch_cap);
	if (n < 0)
		return (int)n;
	return wisp_pubkey_verify(&pub, scratch, (size_t)n, m->signature.data, m->signature.len);
}
