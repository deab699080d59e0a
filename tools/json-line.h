/* The small JSON the tools need: reading one flat command object per line
 * ({"cmd":"ping","peer_id":"...","count":3}) and writing strings with the
 * right escapes. Header-only: each tool is one source file.
 *
 * The reader takes objects whose values are strings, numbers, true, false
 * or null; nested objects and arrays are refused (no command has them). */
#ifndef WISP_TOOLS_JSON_LINE_H
#define WISP_TOOLS_JSON_LINE_H

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JL_MAX_FIELDS 16
#define JL_MAX_TEXT 16384 /* a publish's "hex" up to 8 KiB; larger payloads use "size" */

typedef struct jl_field {
	char key[32];
	char text[JL_MAX_TEXT]; /* strings unescaped; other values as written */
	bool is_string;
} jl_field;

typedef struct jl_object {
	jl_field f[JL_MAX_FIELDS];
	int n;
} jl_object;

static const char *jl_ws(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
		p++;
	return p;
}

/* A JSON string at p (after the quote) into out; returns the end or NULL. */
static const char *jl_string(const char *p, char *out, size_t cap)
{
	size_t n = 0;
	while (*p && *p != '"') {
		char c = *p++;
		if (c == '\\') {
			char e = *p++;
			switch (e) {
			case '"': c = '"'; break;
			case '\\': c = '\\'; break;
			case '/': c = '/'; break;
			case 'n': c = '\n'; break;
			case 't': c = '\t'; break;
			case 'r': c = '\r'; break;
			case 'b': c = '\b'; break;
			case 'f': c = '\f'; break;
			case 'u': {
				unsigned v = 0;
				for (int i = 0; i < 4; i++) {
					if (!isxdigit((unsigned char)p[i]))
						return NULL;
					v = v * 16 + (unsigned)(isdigit((unsigned char)p[i]) ? p[i] - '0'
											: (tolower((unsigned char)p[i]) - 'a' + 10));
				}
				p += 4;
				if (v > 0x7f)
					return NULL; /* commands are ASCII */
				c = (char)v;
				break;
			}
			default:
				return NULL;
			}
		} else if ((unsigned char)c < 0x20) {
			return NULL;
		}
		if (n + 1 >= cap)
			return NULL;
		out[n++] = c;
	}
	if (*p != '"')
		return NULL;
	out[n] = 0;
	return p + 1;
}

/* Parse one line. Returns 0, or -1 with a reason in why. */
static int jl_parse(const char *line, jl_object *o, const char **why)
{
	o->n = 0;
	const char *p = jl_ws(line);
	if (*p++ != '{') {
		*why = "not a JSON object";
		return -1;
	}
	p = jl_ws(p);
	if (*p == '}')
		return jl_ws(p + 1)[0] ? (*why = "text after the object", -1) : 0;
	for (;;) {
		if (o->n == JL_MAX_FIELDS) {
			*why = "too many fields";
			return -1;
		}
		jl_field *f = &o->f[o->n];
		if (*p++ != '"' || !(p = jl_string(p, f->key, sizeof(f->key)))) {
			*why = "bad key";
			return -1;
		}
		p = jl_ws(p);
		if (*p++ != ':') {
			*why = "expected ':'";
			return -1;
		}
		p = jl_ws(p);
		if (*p == '"') {
			if (!(p = jl_string(p + 1, f->text, sizeof(f->text)))) {
				*why = "bad string";
				return -1;
			}
			f->is_string = true;
		} else {
			size_t n = 0;
			while (*p && *p != ',' && *p != '}' && !isspace((unsigned char)*p) && n + 1 < sizeof(f->text))
				f->text[n++] = *p++;
			f->text[n] = 0;
			f->is_string = false;
			if (n == 0 || f->text[0] == '{' || f->text[0] == '[') {
				*why = "values must be strings, numbers, true, false or null";
				return -1;
			}
		}
		o->n++;
		p = jl_ws(p);
		if (*p == ',') {
			p = jl_ws(p + 1);
			continue;
		}
		if (*p == '}' && !jl_ws(p + 1)[0])
			return 0;
		*why = "expected ',' or '}'";
		return -1;
	}
}

static const jl_field *jl_get(const jl_object *o, const char *key)
{
	for (int i = 0; i < o->n; i++)
		if (!strcmp(o->f[i].key, key))
			return &o->f[i];
	return NULL;
}

static const char *jl_str(const jl_object *o, const char *key)
{
	const jl_field *f = jl_get(o, key);
	return f && f->is_string ? f->text : NULL;
}

/* A non-negative integer field; def when absent; -1 when malformed. */
static long long jl_uint(const jl_object *o, const char *key, long long def)
{
	const jl_field *f = jl_get(o, key);
	if (!f)
		return def;
	if (f->is_string)
		return -1;
	char *end;
	long long v = strtoll(f->text, &end, 10);
	return *end || v < 0 ? -1 : v;
}

/* Write s as a JSON string (quotes included). */
static void jl_put_string(FILE *out, const char *s)
{
	fputc('"', out);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(out, "\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			fprintf(out, "\\u%04x", c);
		else
			fputc(c, out);
	}
	fputc('"', out);
}

#endif
