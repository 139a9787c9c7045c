/*
 * policy/stsrule.c: where a recipient's MTA-STS policy counts (the
 * default or "*" decided, no nexthop, MTA-STS on), and what an enforce
 * policy makes of the decision (the built-in profile, the policy's mx).
 */
#include <stdio.h>
#include <string.h>

#include "stsrule.h"
#include "t.h"

static int t_line;

#define KEY_OK(set, section, k, v)                                         \
	do {                                                               \
		struct policy_origin o_ = { "t.ini", ++t_line };           \
		char e_[POLICY_ERR_MAX];                                   \
		int r_ = policy_set_key(set, section, k, v, o_, e_,        \
		    sizeof(e_));                                           \
		if (r_ != 0)                                               \
			fprintf(stderr, "%s:%d: [%s] %s = %s: %s\n",       \
			    __FILE__, __LINE__, section, k, v, e_);        \
		CHECK_INT(r_, 0);                                          \
	} while (0)

static void
build(struct policy_set *set, int with_star, const char *star_nexthop)
{
	struct policy_origin o;
	char err[POLICY_ERR_MAX];

	policy_set_init(set);
	KEY_OK(set, "match own.test", "profile", "mandatory");
	KEY_OK(set, "match hop.test", "profile", "opportunistic");
	KEY_OK(set, "match hop.test", "nexthop", "relay.test:25");
	if (with_star)
		KEY_OK(set, "match *", "profile", "opportunistic");
	if (star_nexthop != NULL)
		KEY_OK(set, "match *", "nexthop", star_nexthop);
	CHECK_INT(policy_set_finish(set, &o, err, sizeof(err)), 0);
}

static int
applies(const struct policy_set *set, const char *rcpt, int mta_sts)
{
	struct policy_decision d;

	CHECK_INT(policy_lookup(set, rcpt, &d), POLICY_OK);
	return policy_sts_applies(&d, mta_sts);
}

static void
where_it_applies(void)
{
	struct policy_set set;

	/* The default decided: yes, unless MTA-STS is off. */
	build(&set, 0, NULL);
	CHECK_INT(applies(&set, "a@other.test", 1), 1);
	CHECK_INT(applies(&set, "a@other.test", 0), 0);
	/* An explicit match, with or without a nexthop: no. */
	CHECK_INT(applies(&set, "a@own.test", 1), 0);
	CHECK_INT(applies(&set, "a@sub.own.test", 1), 0);
	CHECK_INT(applies(&set, "a@hop.test", 1), 0);
	policy_set_free(&set);

	/* "*" counts as the default... */
	build(&set, 1, NULL);
	CHECK_INT(applies(&set, "a@other.test", 1), 1);
	CHECK_INT(applies(&set, "a@other.test", 0), 0);
	CHECK_INT(applies(&set, "a@own.test", 1), 0);
	policy_set_free(&set);

	/* ...but not with a nexthop of its own. */
	build(&set, 1, "smarthost.test:587");
	CHECK_INT(applies(&set, "a@other.test", 1), 0);
	policy_set_free(&set);
}

static void
what_enforce_does(void)
{
	static const char *const mx[] = { "mx1.other.test", "*.other.test" };
	struct policy_set set;
	struct policy_decision d, before;

	build(&set, 0, NULL);
	CHECK_INT(policy_lookup(&set, "a@other.test", &d), POLICY_OK);
	before = d;

	/* testing and none change nothing. */
	CHECK_INT(policy_sts_enforce(&set, MTASTS_TESTING, mx, 2, &d), 0);
	CHECK(memcmp(&d, &before, sizeof(d)) == 0);
	CHECK_INT(policy_sts_enforce(&set, MTASTS_NONE, mx, 2, &d), 0);
	CHECK(memcmp(&d, &before, sizeof(d)) == 0);

	/* enforce: the built-in profile (mandatory, strict), its mx. */
	CHECK_INT(policy_sts_enforce(&set, MTASTS_ENFORCE, mx, 2, &d), 1);
	CHECK_STR(d.profile->name, POLICY_MTA_STS_PROFILE);
	CHECK_INT(d.profile->tls, POLICY_TLS_MANDATORY);
	CHECK_INT(d.profile->verify, POLICY_VERIFY_STRICT);
	CHECK_INT(d.nmx, 2);
	CHECK(d.mx == mx);
	/* The rest of the decision stays. */
	CHECK(d.match == before.match);
	CHECK(d.nexthop == before.nexthop);
	CHECK_STR(d.domain, "other.test");

	/* No mx names: none in the decision either. */
	d = before;
	CHECK_INT(policy_sts_enforce(&set, MTASTS_ENFORCE, mx, 0, &d), 1);
	CHECK_INT(d.nmx, 0);
	CHECK(d.mx == NULL);
	policy_set_free(&set);
}

int
main(void)
{
	RUN(where_it_applies);
	RUN(what_enforce_does);
	return T_DONE();
}
