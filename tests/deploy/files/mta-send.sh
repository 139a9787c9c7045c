#!/bin/bash
# The "legacy MTA" of test_image.sh's pod: one message to MX:25 in plain
# SMTP, exactly as an MTA that knows nothing of mxtls would send it.  The
# pod's redirect takes the connection to mxtls.  Bash alone (/dev/tcp): it
# runs in the mxtls image, which has no SMTP client.
#
#   mta-send.sh MX-ADDRESS RECIPIENT SUBJECT
#
# Until mxtls listens the redirected connection is refused: try again each
# second, up to a minute.  Then stay up (the pod's other containers keep
# running) and print "mta: delivered" or "mta: gave up".
set -u
mx=$1 rcpt=$2 subject=$3

# reply CODE: read one SMTP reply (all its lines); succeed if it is CODE.
reply() {
	local line
	while IFS= read -r -t 30 line <&3; do
		line=${line%$'\r'}
		echo "<- $line"
		case $line in
		[0-9][0-9][0-9]-*) continue ;;
		"$1"*) return 0 ;;
		*) return 1 ;;
		esac
	done
	echo "<- (no reply)"
	return 1
}
send() {
	echo "-> $1"
	printf '%s\r\n' "$1" >&3
}
session() {
	exec 3<>"/dev/tcp/$mx/25" || return 1
	reply 220 || return 1
	send "EHLO mta.legacy.test"; reply 250 || return 1
	send "MAIL FROM:<legacy@mta.legacy.test>"; reply 250 || return 1
	send "RCPT TO:<$rcpt>"; reply 250 || return 1
	send "DATA"; reply 354 || return 1
	printf '%s\r\n' "From: <legacy@mta.legacy.test>" "To: <$rcpt>" \
		"Subject: $subject" "" "Sent by the pod's MTA in plain SMTP." "." >&3
	reply 250 || return 1
	send QUIT; reply 221
	return 0
}

for _ in $(seq 60); do
	if session; then
		exec 3>&-
		echo "mta: delivered"
		exec sleep infinity
	fi
	exec 3>&-
	sleep 1
done
echo "mta: gave up"
exec sleep infinity
