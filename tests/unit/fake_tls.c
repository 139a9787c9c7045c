/*
 * The two functions that read a finished handshake, for test_session
 * (the linker's --wrap sends session.c's calls here; the rest of
 * proxy/tls.c and proxy/dane.c is the real thing): there is no
 * handshake, so what the certificate turned out to be is scripted.
 */
#include <stdio.h>
#include <string.h>

#include "fakes.h"

static const struct {
	const char *what;
	enum tls_result result;
	const char *reason;
} certs[] = {
	{ "ok", TLS_RESULT_OK, "" },
	{ "expired", TLS_RESULT_CERTIFICATE_EXPIRED,
	    "certificate has expired" },
	{ "mismatch", TLS_RESULT_CERTIFICATE_HOST_MISMATCH,
	    "certificate is for mx.other.example" },
};

static size_t cert;
static char names[1024];
static unsigned flags_seen;

int
fake_tls_cert(const char *what)
{
	size_t i;

	for (i = 0; i < sizeof(certs) / sizeof(certs[0]); i++)
		if (strcmp(certs[i].what, what) == 0) {
			cert = i;
			return 0;
		}
	return -1;
}

const char *
fake_tls_names(void)
{
	return names;
}

unsigned
fake_tls_flags(void)
{
	return flags_seen;
}

void
__wrap_tls_facts_collect(SSL *ssl, const char *const *want, int nwant,
    unsigned flags, struct tls_facts *facts)
{
	size_t used = 0;
	int i;

	(void)ssl;
	names[0] = '\0';
	for (i = 0; i < nwant && used < sizeof(names); i++)
		used += (size_t)snprintf(names + used, sizeof(names) - used,
		    "%s%s", i ? " " : "", want[i]);
	flags_seen = flags;
	memset(facts, 0, sizeof(*facts));
	snprintf(facts->version, sizeof(facts->version), "TLSv1.3");
	snprintf(facts->cipher, sizeof(facts->cipher),
	    "TLS_AES_256_GCM_SHA384");
	facts->result = certs[cert].result;
	facts->chain_ok = facts->result != TLS_RESULT_CERTIFICATE_EXPIRED;
	facts->name_ok = facts->result != TLS_RESULT_CERTIFICATE_HOST_MISMATCH;
	if (facts->name_ok && nwant > 0)
		snprintf(facts->matched, sizeof(facts->matched), "%s",
		    want[0]);
	snprintf(facts->reason, sizeof(facts->reason), "%s",
	    certs[cert].reason);
}

/* Only "ok" matches the TLSA records (a DANE-EE match, usage 3). */
int
__wrap_dane_verify(SSL *ssl, const struct dane_tlsa_set *set,
    const char *const *want, int nwant, struct dane_result *out)
{
	(void)ssl;
	(void)set;
	memset(out, 0, sizeof(*out));
	out->usage = out->selector = out->mtype = out->depth = -1;
	if (certs[cert].result == TLS_RESULT_OK) {
		out->matched = 1;
		out->usage = 3;
		out->selector = 1;
		out->mtype = 1;
		out->depth = 0;
		return 1;
	}
	snprintf(out->reason, sizeof(out->reason), "TLSA 3 1 1 abababab for "
	    "%s did not match the certificate", nwant > 0 ? want[0] : "?");
	return 0;
}
