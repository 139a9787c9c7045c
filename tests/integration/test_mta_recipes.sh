#!/bin/sh
# Recipes for MTAs: a message to recipients at several domains costs the MTA
# one retry cycle per extra domain (mxtls answers 452 4.5.3 to a recipient
# whose next hop differs from the transaction's).  The recipes in deploy/
# make the MTA send one domain per transaction, or send the rest soon; here
# Postfix, Exim, OpenSMTPD and Sendmail deliver a message to three domains
# through mxtls.
#
#   example.test  MX mx.example.test   127.0.0.2:25
#   example.net   MX mx2.example.test  127.0.0.3:25
#   example.org   MX mx1.example.test  127.0.0.4:25
#
# MEASURE=1 also waits (up to 40 minutes) for Postfix without the recipe to
# deliver everything and prints how long each domain took.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_mta.sh"
export IT_TIMEOUT=420
[ "${MEASURE:-0}" = 1 ] && IT_TIMEOUT=6000
it_setup

dns_mx example.test mx.example.test 10
dns_a mx.example.test 127.0.0.2
dns_mx example.net mx2.example.test 10
dns_a mx2.example.test 127.0.0.3
dns_mx example.org mx1.example.test 10
dns_a mx1.example.test 127.0.0.4
dns_start || finish

pf_mx mx 127.0.0.2:25 hostname=mx.example.test || finish
pf_mx mx2 127.0.0.3:25 hostname=mx2.example.test || finish
pf_mx mx3 127.0.0.4:25 hostname=mx1.example.test || finish
mxtls_start </dev/null || finish

M=$W/msg
mkdir -p "$M"
mkmsg "$M/m" "three domains"
mkmsg "$M/r" "three domains, recipe"

# pf_mta_default NAME LISTEN [MAIN.CF FILE]: the legacy MTA relaying to
# mxtls with Postfix's own retry times (pf_mta shortens them), plus FILE.
pf_mta_default() {
	pf_mta "$1" "$2" "[127.0.0.1]:$MXTLS_PORT" || return 1
	pf_stop "$1"
	sed -i -e '/^minimal_backoff_time/d' -e '/^maximal_backoff_time/d' \
		-e '/^queue_run_delay/d' "$(pf_dir "$1")/main.cf"
	[ -n "${3:-}" ] && cat "$3" >>"$(pf_dir "$1")/main.cf"
	_pf_run "$1" "$2"
}
# send3 OUT PORT MSG: one message to a recipient at each domain.
send3() {
	smtpc "$1" "127.0.0.1:$2" "EHLO client.test" "MAIL FROM:<s@sender.test>" \
		"RCPT TO:<a@example.test>" "RCPT TO:<b@example.net>" "RCPT TO:<c@example.org>" \
		"DATA=$3" QUIT
}
# all3: each MX has delivered the message with the recipe (mkmsg makes a
# Message-ID of the subject).
all3() {
	_t=$(($(date +%s) + 20))
	until [ -n "$(mx_mail mx a@example.test | xargs -r grep -l 'Subject: three domains, recipe')" ] &&
		[ -n "$(mx_mail mx2 b@example.net | xargs -r grep -l 'Subject: three domains, recipe')" ] &&
		[ -n "$(mx_mail mx3 c@example.org | xargs -r grep -l 'Subject: three domains, recipe')" ]; do
		[ "$(date +%s)" -ge $_t ] && { tail -n 20 "$(pf_log recipe)"; return 1; }
		sleep 0.2
	done
}

# one_domain: exactly one of the three MXs has the message.
one_domain() {
	_n=0
	[ -n "$(mx_mail mx a@example.test)" ] && _n=$((_n + 1))
	[ -n "$(mx_mail mx2 b@example.net)" ] && _n=$((_n + 1))
	[ -n "$(mx_mail mx3 c@example.org)" ] && _n=$((_n + 1))
	[ $_n -eq 1 ] || { echo "$_n domains delivered"; return 1; }
}
# one_domain_of SUBJECT-SUFFIX: exactly one MX has "three domains, SUFFIX".
one_domain_of() {
	_n=0
	_s="Subject: three domains, $1"
	[ -n "$(mx_mail mx a@example.test | xargs -r grep -lx "$_s")" ] && _n=$((_n + 1))
	[ -n "$(mx_mail mx2 b@example.net | xargs -r grep -lx "$_s")" ] && _n=$((_n + 1))
	[ -n "$(mx_mail mx3 c@example.org | xargs -r grep -lx "$_s")" ] && _n=$((_n + 1))
	[ $_n -eq 1 ] || { echo "$_n domains delivered"; return 1; }
}
# identical3: the last copy at each MX is the message, byte for byte.
identical3() {
	delivered_is "$(mx_mail mx a@example.test | tail -n 1)" "$M/r" &&
		delivered_is "$(mx_mail mx2 b@example.net | tail -n 1)" "$M/r" &&
		delivered_is "$(mx_mail mx3 c@example.org | tail -n 1)" "$M/r"
}

# ------------------------------------------------ Postfix without the recipe
P=$(free_port)
pf_mta_default plain "127.0.0.1:$P" || finish
t0=$(date +%s)
send3 "$W/t.plain" "$P" "$M/m"
check "without the recipe: Postfix accepted the message" reply_is "$W/t.plain" DOT 250
check "R17-16 without the recipe Postfix defers the other domains (452 4.5.3)" \
	wait_for_log "$(pf_log plain)" 'status=deferred .*452 4\.5\.3' 20
sleep 10
check "R17-16 without the recipe only one domain is delivered 10 s later" one_domain
if [ "${MEASURE:-0}" = 1 ]; then
	# Only this message is there yet: wait until every MX has it.
	until { [ -n "$(mx_mail mx a@example.test)" ] && [ -n "$(mx_mail mx2 b@example.net)" ] &&
		[ -n "$(mx_mail mx3 c@example.org)" ]; } || [ $(($(date +%s) - t0)) -ge 2500 ]; do
		sleep 5
	done
	# Postfix's own account: delay= is each recipient's time in its queue.
	grep -E 'status=(sent|deferred)' "$(pf_log plain)" | sed 's/^/# /'
fi
pf_stop plain

# ------------------------------------------------ Postfix with deploy/postfix/main.cf.snippet
P=$(free_port)
pf_mta_default recipe "127.0.0.1:$P" deploy/postfix/main.cf.snippet || finish
t0=$(date +%s)
send3 "$W/t.recipe" "$P" "$M/r"
check "with the recipe: Postfix accepted the message" reply_is "$W/t.recipe" DOT 250
check "R17-16 with the Postfix recipe all three domains are delivered at once" all3
note "with the recipe: all three delivered after $(($(date +%s) - t0)) s"
check "R17-16 with the Postfix recipe Postfix logs no deferral" no_grep_since "$(pf_log recipe)" 0 'status=deferred'
check "with the recipe: each MX got the message byte-identical" identical3
pf_stop recipe

# ------------------------------------------------ Exim (from build/mta, see deploy/install-deps.sh)
if [ ! -x "$EXIM" ]; then
	fail "Exim: build/mta/usr/sbin/exim4 is missing (make deps-test unpacks it)"
else
	P=$(free_port)
	exim_mta plain "$P" || fail "Exim starts" "$(cat "$W/exim-plain/exim.out")"
	mkmsg "$M/e" "three domains, exim"
	x=$(mxtls_mark)
	send3 "$W/t.exim" "$P" "$M/e"
	check "Exim without the recipe: accepted" reply_is "$W/t.exim" DOT 250
	for r in a@example.test b@example.net c@example.org; do
		check "R17-16 Exim without the recipe: $r delivered at once" exim_delivered plain "$r"
	done
	check "Exim without the recipe: mxtls did answer 452 4.5.3 (Exim resent at once)" \
		grep_since "$MXTLS_LOG" "$x" '452 4\.5\.3'

	P=$(free_port)
	exim_mta recipe "$P" "$(sed -n 's/^  multi_domain/  multi_domain/p' deploy/exim/smarthost-transport.conf)" ||
		fail "Exim starts" "$(cat "$W/exim-recipe/exim.out")"
	mkmsg "$M/f" "three domains, exim recipe"
	x=$(mxtls_mark)
	send3 "$W/t.exim2" "$P" "$M/f"
	check "Exim with the recipe: accepted" reply_is "$W/t.exim2" DOT 250
	for r in a@example.test b@example.net c@example.org; do
		check "R17-16 Exim with the recipe: $r delivered" exim_delivered recipe "$r"
	done
	check "R17-16 Exim with the recipe: one domain per transaction, no 452 4.5.3" \
		no_grep_since "$MXTLS_LOG" "$x" '452 4\.5\.3'
fi

# ------------------------------------------------ OpenSMTPD (from build/mta)
# smtpd_delivered NAME RCPT [SECONDS]: OpenSMTPD relayed RCPT (result=Ok).
smtpd_delivered() {
	wait_for_log "$(smtpd_log "$1")" "to=<$2>.*result=\"?Ok" "${3:-20}" && return 0
	echo "OpenSMTPD $1 logged no delivery to $2:"
	grep -E 'smtp-out|delivery' "$(smtpd_log "$1")" | tail -n 15 | cut -c 1-300 | sed 's/^/  | /'
	return 1
}
if [ ! -x "$SMTPD" ]; then
	fail "OpenSMTPD: build/mta/usr/sbin/smtpd is missing (make deps-test unpacks it)"
else
	P=$(free_port)
	smtpd_mta plain "$P" || fail "OpenSMTPD starts" "$(cat "$(smtpd_log plain)")"
	mkmsg "$M/o" "three domains, o"
	send3 "$W/t.smtpd" "$P" "$M/o"
	check "OpenSMTPD: accepted" reply_is "$W/t.smtpd" DOT 250
	check "R17-16 OpenSMTPD without the recipe defers the other domains (452 4.5.3)" \
		wait_for_log "$(smtpd_log plain)" 'result="?TempFail.*452 4\.5\.3' 20
	sleep 10
	check "R17-16 OpenSMTPD without the recipe: only one domain delivered 10 s later" one_domain_of o
	if [ "${MEASURE:-0}" = 1 ]; then
		t0=$(date +%s)
		until [ "$(grep -c 'result="Ok"' "$(smtpd_log plain)")" -ge 3 ] ||
			[ $(($(date +%s) - t0)) -ge 2400 ]; do
			sleep 5
		done
		# delay= is each recipient's time since it was queued.
		grep -E 'mta delivery' "$(smtpd_log plain)" | sed 's/^/# /'
	fi
	# The recipe's command, with the kick every 2 s instead of every minute.
	kick=$(awk '!/^#/ && NF > 6 { $1 = $2 = $3 = $4 = $5 = $6 = ""; print; exit }' \
		deploy/opensmtpd/opensmtpd-mxtls.cron | sed "s|/usr/sbin/smtpctl|$SMTPCTL|")
	if [ -n "$kick" ]; then
		( while sleep 2; do sh -c "$kick"; done ) &
		it_track kick $! -
	else
		fail "OpenSMTPD recipe: no command in deploy/opensmtpd/opensmtpd-mxtls.cron"
	fi
	for r in a@example.test b@example.net c@example.org; do
		check "R17-16 OpenSMTPD with smtpctl schedule all: $r delivered" smtpd_delivered plain "$r" 30
	done
fi

# ------------------------------------------------ Sendmail (from build/mta): deploy/sendmail/mxtls.mc
# sm_traffic NAME ERE: a line of Sendmail's SMTP traffic log (-X) matches.
sm_traffic() {
	grep -qE -- "$2" "$(sm_dir "$1")/traffic" && return 0
	echo "no line matching /$2/ in $(sm_dir "$1")/traffic; its replies:"
	grep -E '<<< [0-9]{3} ' "$(sm_dir "$1")/traffic" | tail -n 15 | sed 's/^/  | /'
	return 1
}
# mx_subject MX RCPT MSGFILE SECONDS: MX delivered MSGFILE (by its Subject)
# to RCPT within SECONDS, byte for byte.
mx_subject() {
	_s=$(grep -m 1 '^Subject: ' "$3")
	_t=$(it_until "$4")
	until _f=$(mx_mail "$1" "$2" | xargs -r grep -lxF "$_s" | head -n 1) && [ -n "$_f" ]; do
		[ "$(date +%s)" -ge "$_t" ] && { echo "MX $1 has no \"$_s\" for $2"; return 1; }
		sleep 0.2
	done
	delivered_is "$_f" "$3"
}
if [ ! -x "$SENDMAIL" ] || [ ! -f "$SENDMAIL_CF/m4/cf.m4" ]; then
	fail "Sendmail: build/mta/usr/libexec/sendmail/sendmail or sendmail-cf's macros are missing (make deps-test unpacks them)"
elif ! command -v m4 >/dev/null 2>&1; then
	fail "Sendmail: m4 is missing (make deps-test installs it)"
else
	P=$(free_port)
	# The recipe's .cf, its queue run every 5 s (the README says e.g. -q5m).
	check "Sendmail starts with the .cf built from deploy/sendmail/mxtls.mc" sm_mta recipe "$P" 5s
	sm_up=$LAST_OK
	mkmsg "$M/s" "sendmail"
	head -c -1 "$M/s" >"$M/s.swaks" # swaks adds the last line end itself
	x=$(mxtls_mark)
	[ "$sm_up" = yes ] && swaks --server "127.0.0.1:$P" --from s@sender.test --to s1@example.test \
		--timeout 15 --data "@$M/s.swaks" >"$W/swaks.sendmail.out" 2>&1
	echo "exit=$?" >>"$W/swaks.sendmail.out"
	check_if "$sm_up" "Sendmail: accepted swaks's message" swaks_ok "$W/swaks.sendmail.out"
	check_if "$sm_up" "Sendmail: relayed it through mxtls, which delivered it over TLS (outcome=tls)" \
		mxtls_delivery_since "$x" 'outcome=tls' 'rcpt_domain=example\.test' 'tls=TLSv1\.3'
	check_if "$sm_up" "Sendmail: the MX received it from mxtls over TLSv1.3" received_over mx s1@example.test TLSv1.3
	check_if "$sm_up" "Sendmail: the MX got it byte-identical" delivered mx s1@example.test "$M/s"

	mkmsg "$M/t" "three domains, sendmail"
	x=$(mxtls_mark)
	t0=$(date +%s)
	[ "$sm_up" = yes ] && send3 "$W/t.sendmail" "$P" "$M/t"
	check_if "$sm_up" "Sendmail: accepted the message to three domains" reply_is "$W/t.sendmail" DOT 250
	for mr in mx:a@example.test mx2:b@example.net mx3:c@example.org; do
		check_if "$sm_up" "R17-16 Sendmail: ${mr#*:} delivered (its queue runs send what got 452), byte-identical" \
			mx_subject "${mr%%:*}" "${mr#*:}" "$M/t" 30
	done
	note "Sendmail, queue run every 5 s: all three delivered after $(($(date +%s) - t0)) s"
	check_if "$sm_up" "Sendmail: mxtls did answer 452 4.5.3 to the other domains" \
		sm_traffic recipe '<<< 452 4\.5\.3 '
	for d in example.test example.net example.org; do
		check_if "$sm_up" "Sendmail: mxtls delivered to $d over TLS (outcome=tls)" \
			mxtls_delivery_since "$x" 'outcome=tls' "rcpt_domain=$d "
	done
	check_if "$sm_up" "Sendmail: its queue is empty" sm_queue_empty recipe
	check_if "$sm_up" "Sendmail stopped by PID" sm_stop recipe
fi

mxtls_stop
finish
