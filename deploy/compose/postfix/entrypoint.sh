#!/bin/sh
# Configure Postfix from the environment, then run it in the foreground.
set -eu
: "${RELAYHOST:?set RELAYHOST, e.g. [mxtls]:10025}"
: "${MYHOSTNAME:=mta.example.org}"
: "${MYNETWORKS:=127.0.0.0/8}"
cp /usr/share/postfix/main.cf.debian /etc/postfix/main.cf
echo "$MYHOSTNAME" >/etc/mailname
postconf -e \
	"myhostname = $MYHOSTNAME" \
	"myorigin = /etc/mailname" \
	"mydestination = localhost" \
	"mynetworks = $MYNETWORKS" \
	"inet_interfaces = all" \
	"inet_protocols = ipv4" \
	"relayhost = $RELAYHOST" \
	"smtp_tls_security_level = none" \
	"maillog_file = /dev/stdout" \
	"compatibility_level = 3.6" \
	"smtp_destination_recipient_limit = 1"
# The last line is deploy/postfix/main.cf.snippet: a message to several
# domains goes out at once, not one domain per queue run.
# No chroot: the smtp client then resolves "mxtls" through Docker's DNS in
# /etc/resolv.conf without copies of it inside /var/spool/postfix.
postconf -F '*/*/chroot = n'
newaliases
exec postfix start-fg
