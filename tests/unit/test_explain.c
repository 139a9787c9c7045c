/*
 * proxy/explain.c: configs written to a temporary directory, loaded with
 * config_load(), explained into a memory buffer and compared line by line.
 *
 * In the expected texts "@F" stands for the config file's path, "@T" for
 * the temporary directory, and a tab for the padding before the origin
 * column (two spaces after the longest value of at most 56 columns).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "explain.h"
#include "t.h"

#define LABEL_WIDTH 13
#define VALUE_WIDTH_MAX 56

static char tmp[PATH_MAX];
static char *created[32];
static int ncreated;
static char path[PATH_MAX + 64]; /* the config file of the current test */

static void
remember(const char *p)
{
	int i;

	for (i = 0; i < ncreated; i++)
		if (strcmp(created[i], p) == 0)
			return;
	if (ncreated < (int)(sizeof(created) / sizeof(created[0])))
		created[ncreated++] = strdup(p);
}

/* tmp/NAME with text. */
static void
write_file(const char *name, const char *text)
{
	char p[PATH_MAX + 64];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", tmp, name);
	if ((f = fopen(p, "w")) == NULL) {
		perror(p);
		exit(2);
	}
	fputs(text, f);
	fclose(f);
	remember(p);
}

/* Write and load tmp/NAME; 0 with cfg filled. */
static int
load(const char *name, const char *text, struct config *cfg)
{
	struct config_errors errs = { 0 };
	int i, r;

	write_file(name, text);
	snprintf(path, sizeof(path), "%s/%s", tmp, name);
	r = config_load(path, cfg, &errs);
	for (i = 0; i < errs.n; i++)
		fprintf(stderr, "    config: %s\n", errs.msg[i]);
	config_errors_free(&errs);
	CHECK_INT(r, 0);
	return r;
}

static size_t
width(const char *s, size_t n)
{
	size_t i, w = 0;

	for (i = 0; i < n; i++)
		if (((unsigned char)s[i] & 0xc0) != 0x80)
			w++;
	return w;
}

/* Append n bytes of s to the growing string *out. */
static void
append(char **out, size_t *len, const char *s, size_t n)
{
	char *p = realloc(*out, *len + n + 1);

	if (p == NULL) {
		perror("realloc");
		exit(2);
	}
	memcpy(p + *len, s, n);
	*len += n;
	p[*len] = '\0';
	*out = p;
}

/* The expected text with "@F", "@T" and tabs expanded; malloc'ed. */
static char *
expand(const char *want)
{
	char *subst = NULL, *out = NULL, *line, *tab, *nl;
	size_t slen = 0, olen = 0, vw = 0, w;
	const char *s;

	append(&subst, &slen, "", 0);
	for (s = want; *s != '\0'; s++) {
		if (s[0] == '@' && s[1] == 'F') {
			append(&subst, &slen, path, strlen(path));
			s++;
		} else if (s[0] == '@' && s[1] == 'T') {
			append(&subst, &slen, tmp, strlen(tmp));
			s++;
		} else
			append(&subst, &slen, s, 1);
	}
	/* The value column: the widest value that is not too wide. */
	for (line = subst; *line != '\0'; line = nl + 1) {
		if ((nl = strchr(line, '\n')) == NULL)
			nl = line + strlen(line) - 1;
		tab = memchr(line, '\t', (size_t)(nl - line));
		if (tab == NULL)
			continue;
		w = width(line + LABEL_WIDTH, (size_t)(tab - line) - LABEL_WIDTH);
		if (w > vw && w <= VALUE_WIDTH_MAX)
			vw = w;
	}
	append(&out, &olen, "", 0);
	for (line = subst; *line != '\0'; line = nl + 1) {
		if ((nl = strchr(line, '\n')) == NULL)
			nl = line + strlen(line) - 1;
		tab = memchr(line, '\t', (size_t)(nl - line));
		if (tab == NULL) {
			append(&out, &olen, line, (size_t)(nl - line) + 1);
			continue;
		}
		append(&out, &olen, line, (size_t)(tab - line));
		w = width(line + LABEL_WIDTH, (size_t)(tab - line) - LABEL_WIDTH);
		append(&out, &olen, "  ", 2);
		for (; w < vw; w++)
			append(&out, &olen, " ", 1);
		append(&out, &olen, tab + 1, (size_t)(nl - tab));
	}
	free(subst);
	return out;
}

/* explain_print() into *out, its stderr into *err; returns its result. */
static int
explain(const struct config *cfg, const char *rcpt, char **out, char **err)
{
	FILE *o, *e;
	size_t olen = 0;
	long n;
	int saved, r;

	o = open_memstream(out, &olen);
	e = tmpfile();
	if (o == NULL || e == NULL) {
		perror("open_memstream/tmpfile");
		exit(2);
	}
	fflush(stderr);
	saved = dup(2);
	dup2(fileno(e), 2);
	r = explain_print(cfg, &cfg->policy, rcpt, o);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	fclose(o);
	n = ftell(e);
	rewind(e);
	*err = calloc(1, (size_t)n + 1);
	if (*err == NULL || fread(*err, 1, (size_t)n, e) != (size_t)n) {
		perror("read stderr");
		exit(2);
	}
	fclose(e);
	return r;
}

static void
expect(const struct config *cfg, const char *rcpt, const char *want,
    int line)
{
	char *out = NULL, *err = NULL, *exp = expand(want);
	int r = explain(cfg, rcpt, &out, &err);

	if (r != 0 || strcmp(out, exp) != 0 || err[0] != '\0') {
		fprintf(stderr, "%s:%d: explain %s: returned %d\n"
		    "--- want:\n%s--- got:\n%s--- stderr:\n%s", __FILE__, line,
		    rcpt, r, exp, out, err);
		t_cur = 1;
	}
	free(out);
	free(err);
	free(exp);
}

static void
expect_invalid(const struct config *cfg, const char *rcpt, const char *msg,
    int line)
{
	char *out = NULL, *err = NULL;
	int r = explain(cfg, rcpt, &out, &err);

	if (r != 1 || out[0] != '\0' || strcmp(err, msg) != 0) {
		fprintf(stderr, "%s:%d: explain \"%s\": returned %d\n"
		    "--- want on stderr:\n%s--- got:\n%s--- stdout:\n%s",
		    __FILE__, line, rcpt, r, msg, err, out);
		t_cur = 1;
	}
	free(out);
	free(err);
}

#define EXPECT(cfg, rcpt, want) expect(cfg, rcpt, want, __LINE__)
#define EXPECT_INVALID(cfg, rcpt, msg) \
	expect_invalid(cfg, rcpt, msg, __LINE__)

static const char full[] =
    "[tls]\n"					/* 1 */
    "ca_bundle = ca.crt\n"			/* 2 */
    "min_version = 1.2\n"			/* 3 */
    "\n"					/* 4 */
    "[policy]\n"				/* 5 */
    "default = opportunistic\n"			/* 6 */
    "\n"					/* 7 */
    "[profile partners]\n"			/* 8 */
    "tls = mandatory\n"				/* 9 */
    "min_version = 1.3\n"			/* 10 */
    "mx = *.mx.partner.example\n"		/* 11 */
    "\n"					/* 12 */
    "[profile mandatory]\n"			/* 13 */
    "verify = none\n"				/* 14 */
    "\n"					/* 15 */
    "[match bücher.example]\n"			/* 16 */
    "profile = partners\n"			/* 17 */
    "mx = mx.bücher.example\n"			/* 18 */
    "nexthop = Relay.Example.NET:587\n"		/* 19 */
    "\n"					/* 20 */
    "[match jörg@example.com]\n"		/* 21 */
    "profile = mandatory\n"			/* 22 */
    "\n"					/* 23 */
    "[match partner.example]\n"			/* 24 */
    "profile = partners\n"			/* 25 */
    "\n"					/* 26 */
    "[profile relaxed]\n"			/* 27 */
    "verify = none\n"				/* 28 */
    "max_version = 1.2\n"			/* 29 */
    "ciphers = ECDHE+AESGCM\n"			/* 30 */
    "ca_bundle = other.crt\n"			/* 31 */
    "tls = off\n"				/* 32 */
    "\n"					/* 33 */
    "[match *]\n"				/* 34 */
    "profile = relaxed\n";			/* 35 */

static void
test_full(void)
{
	struct config cfg;

	write_file("ca.crt", "x\n");
	write_file("other.crt", "x\n");
	if (load("full.ini", full, &cfg) != 0)
		return;

	/* A UTF-8 domain, matched by a parent written in UTF-8 too. */
	EXPECT(&cfg, "Jörg@Mx.Bücher.example",
	    "recipient    Jörg@Mx.Bücher.example\n"
	    "domain       mx.xn--bcher-kva.example\n"
	    "match        [match xn--bcher-kva.example]\t@F:16\n"
	    "profile      partners\t@F:8\n"
	    "tls          mandatory\t@F:9\n"
	    "verify       strict\tbuilt-in default\n"
	    "min_version  1.3\t@F:10\n"
	    "max_version  1.3\tbuilt-in default\n"
	    "ciphers      (BoringSSL default)\tbuilt-in default\n"
	    "ca_bundle    @T/ca.crt\t[tls] at @F:2\n"
	    "mx           mx.xn--bcher-kva.example\t@F:18\n"
	    "nexthop      relay.example.net:587\t@F:19\n"
	    "dane         on\tbuilt-in default\n"
	    "mta-sts      not consulted: an explicit match names this domain\n");

	/* The same domain in A-label form, mixed case: no domain line. */
	EXPECT(&cfg, "x@XN--BCHER-KVA.example",
	    "recipient    x@XN--BCHER-KVA.example\n"
	    "match        [match xn--bcher-kva.example]\t@F:16\n"
	    "profile      partners\t@F:8\n"
	    "tls          mandatory\t@F:9\n"
	    "verify       strict\tbuilt-in default\n"
	    "min_version  1.3\t@F:10\n"
	    "max_version  1.3\tbuilt-in default\n"
	    "ciphers      (BoringSSL default)\tbuilt-in default\n"
	    "ca_bundle    @T/ca.crt\t[tls] at @F:2\n"
	    "mx           mx.xn--bcher-kva.example\t@F:18\n"
	    "nexthop      relay.example.net:587\t@F:19\n"
	    "dane         on\tbuilt-in default\n"
	    "mta-sts      not consulted: an explicit match names this domain\n");

	/* An address match; a built-in profile changed by a section. */
	EXPECT(&cfg, "jörg@EXAMPLE.com.",
	    "recipient    jörg@EXAMPLE.com.\n"
	    "match        [match jörg@example.com]\t@F:21\n"
	    "profile      mandatory\tbuilt-in, changed at @F:13\n"
	    "tls          mandatory\tbuilt-in\n"
	    "verify       none\t@F:14\n"
	    "min_version  1.2\t[tls] at @F:3\n"
	    "max_version  1.3\tbuilt-in default\n"
	    "ciphers      (BoringSSL default)\tbuilt-in default\n"
	    "ca_bundle    @T/ca.crt\t[tls] at @F:2\n"
	    "mx           (none: the MX host name)\tbuilt-in\n"
	    "nexthop      (none)\tbuilt-in default\n"
	    "dane         on\tbuilt-in\n"
	    "mta-sts      not consulted: an explicit match names this domain\n");

	/* mx from the profile; a bare domain. */
	EXPECT(&cfg, "mx1.partner.example",
	    "recipient    mx1.partner.example\n"
	    "match        [match partner.example]\t@F:24\n"
	    "profile      partners\t@F:8\n"
	    "tls          mandatory\t@F:9\n"
	    "verify       strict\tbuilt-in default\n"
	    "min_version  1.3\t@F:10\n"
	    "max_version  1.3\tbuilt-in default\n"
	    "ciphers      (BoringSSL default)\tbuilt-in default\n"
	    "ca_bundle    @T/ca.crt\t[tls] at @F:2\n"
	    "mx           *.mx.partner.example\t@F:11\n"
	    "nexthop      (none)\tbuilt-in default\n"
	    "dane         on\tbuilt-in default\n"
	    "mta-sts      not consulted: an explicit match names this domain\n");

	/* "*", a profile that sets every inherited key. */
	EXPECT(&cfg, "someone@else.example",
	    "recipient    someone@else.example\n"
	    "match        [match *]\t@F:34\n"
	    "profile      relaxed\t@F:27\n"
	    "tls          off\t@F:32\n"
	    "verify       none\t@F:28\n"
	    "min_version  1.2\t[tls] at @F:3\n"
	    "max_version  1.2\t@F:29\n"
	    "ciphers      ECDHE+AESGCM\t@F:30\n"
	    "ca_bundle    @T/other.crt\t@F:31\n"
	    "mx           (none: the MX host name)\tbuilt-in default\n"
	    "nexthop      (none)\tbuilt-in default\n"
	    "dane         on\tbuilt-in default\n"
	    "mta-sts      no policy cached (looked up at the first message)\n");
	config_free(&cfg);
}

static void
test_defaults(void)
{
	struct config cfg;

	write_file("ca.crt", "x\n");
	if (load("min.ini", "[tls]\nca_bundle = ca.crt\n", &cfg) != 0)
		return;
	EXPECT(&cfg, "a@example.org",
	    "recipient    a@example.org\n"
	    "match        [policy] default\tbuilt-in\n"
	    "profile      opportunistic\tbuilt-in\n"
	    "tls          opportunistic\tbuilt-in\n"
	    "verify       strict\tbuilt-in\n"
	    "min_version  1.2\tbuilt-in default\n"
	    "max_version  1.3\tbuilt-in default\n"
	    "ciphers      (BoringSSL default)\tbuilt-in default\n"
	    "ca_bundle    @T/ca.crt\t[tls] at @F:2\n"
	    "mx           (none: the MX host name)\tbuilt-in\n"
	    "nexthop      (none)\tbuilt-in default\n"
	    "dane         on\tbuilt-in\n"
	    "mta-sts      no policy cached (looked up at the first message)\n");
	config_free(&cfg);

	/* [policy] default naming a profile of the file. */
	if (load("dflt.ini", "[tls]\nca_bundle = ca.crt\nmax_version = 1.2\n"
	    "ciphers = ECDHE+CHACHA20\n"
	    "[profile strict]\ntls = mandatory\n"
	    "[policy]\ndefault = strict\n", &cfg) != 0)
		return;
	EXPECT(&cfg, "a@bücher.example",
	    "recipient    a@bücher.example\n"
	    "domain       xn--bcher-kva.example\n"
	    "match        [policy] default\t@F:8\n"
	    "profile      strict\t@F:5\n"
	    "tls          mandatory\t@F:6\n"
	    "verify       strict\tbuilt-in default\n"
	    "min_version  1.2\tbuilt-in default\n"
	    "max_version  1.2\t[tls] at @F:3\n"
	    "ciphers      ECDHE+CHACHA20\t[tls] at @F:4\n"
	    "ca_bundle    @T/ca.crt\t[tls] at @F:2\n"
	    "mx           (none: the MX host name)\tbuilt-in default\n"
	    "nexthop      (none)\tbuilt-in default\n"
	    "dane         on\tbuilt-in default\n"
	    "mta-sts      no policy cached (looked up at the first message)\n");
	config_free(&cfg);
}

/* A value wider than the column does not push the others out. */
static void
test_long_value(void)
{
	struct config cfg;
	char dir[PATH_MAX + 64];

	snprintf(dir, sizeof(dir), "%s/a-directory-with-a-long-name-for-bundles",
	    tmp);
	mkdir(dir, 0700);
	remember(dir); /* before the file in it: removed after it */
	write_file("a-directory-with-a-long-name-for-bundles/ca.crt", "x\n");
	if (load("long.ini", "[tls]\n"
	    "ca_bundle = a-directory-with-a-long-name-for-bundles/ca.crt\n"
	    "[match example.org]\nprofile = mandatory\n"
	    "mx = mx1.example.org mx2.example.org\n", &cfg) == 0) {
		CHECK(strlen(cfg.ca_bundle) > VALUE_WIDTH_MAX);
		EXPECT(&cfg, "a@example.org",
		    "recipient    a@example.org\n"
		    "match        [match example.org]\t@F:3\n"
		    "profile      mandatory\tbuilt-in\n"
		    "tls          mandatory\tbuilt-in\n"
		    "verify       strict\tbuilt-in\n"
		    "min_version  1.2\tbuilt-in default\n"
		    "max_version  1.3\tbuilt-in default\n"
		    "ciphers      (BoringSSL default)\tbuilt-in default\n"
		    "ca_bundle    @T/a-directory-with-a-long-name-for-bundles/"
		    "ca.crt\t[tls] at @F:2\n"
		    "mx           mx1.example.org, mx2.example.org\t@F:5\n"
		    "nexthop      (none)\tbuilt-in default\n"
		    "dane         on\tbuilt-in\n"
		    "mta-sts      not consulted: an explicit match names this domain\n");
	}
	config_free(&cfg);
}

static void
test_invalid(void)
{
	struct config cfg;

	write_file("ca.crt", "x\n");
	if (load("inv.ini", "[tls]\nca_bundle = ca.crt\n", &cfg) != 0)
		return;
	EXPECT_INVALID(&cfg, "", "mxtls: explain: \"\": empty recipient\n");
	EXPECT_INVALID(&cfg, "user@",
	    "mxtls: explain: \"user@\": no domain\n");
	EXPECT_INVALID(&cfg, "user@.",
	    "mxtls: explain: \"user@.\": no domain\n");
	EXPECT_INVALID(&cfg, "@example.com",
	    "mxtls: explain: \"@example.com\": empty local part before "
	    "\"@\"\n");
	EXPECT_INVALID(&cfg, "a\tb@example.com",
	    "mxtls: explain: \"a\tb@example.com\": control character in "
	    "recipient\n");
	EXPECT_INVALID(&cfg, "x@-bücher.example",
	    "mxtls: explain: \"x@-bücher.example\": invalid domain: string "
	    "start/ends with forbidden hyphen (the proxy refuses the "
	    "address: 553 5.1.3)\n");
	EXPECT_INVALID(&cfg, "x@b\xfc" "cher.example",
	    "mxtls: explain: \"x@b\xfc" "cher.example\": invalid domain: "
	    "string encoding error (the proxy refuses the address: 553 "
	    "5.1.3)\n");
	/* A symbol UTS #46 allows is no error. */
	EXPECT(&cfg, "x@☃.example",
	    "recipient    x@☃.example\n"
	    "domain       xn--n3h.example\n"
	    "match        [policy] default\tbuilt-in\n"
	    "profile      opportunistic\tbuilt-in\n"
	    "tls          opportunistic\tbuilt-in\n"
	    "verify       strict\tbuilt-in\n"
	    "min_version  1.2\tbuilt-in default\n"
	    "max_version  1.3\tbuilt-in default\n"
	    "ciphers      (BoringSSL default)\tbuilt-in default\n"
	    "ca_bundle    @T/ca.crt\t[tls] at @F:2\n"
	    "mx           (none: the MX host name)\tbuilt-in\n"
	    "nexthop      (none)\tbuilt-in default\n"
	    "dane         on\tbuilt-in\n"
	    "mta-sts      no policy cached (looked up at the first message)\n");
	config_free(&cfg);
}

static void
cleanup(void)
{
	int i;

	for (i = ncreated - 1; i >= 0; i--) {
		if (remove(created[i]) != 0 && errno != ENOENT)
			perror(created[i]);
		free(created[i]);
	}
	if (rmdir(tmp) != 0)
		perror(tmp);
}

int
main(void)
{
	char templ[] = "/tmp/mxtls-test-explain-XXXXXX";

	if (mkdtemp(templ) == NULL || realpath(templ, tmp) == NULL) {
		perror("mkdtemp");
		return 2;
	}
	RUN(test_full);
	RUN(test_defaults);
	RUN(test_long_value);
	RUN(test_invalid);
	cleanup();
	return T_DONE();
}
