#!/bin/sh
# Usage: count.sh LOGFILE [EVENT]
# Prints how many EVENT lines (default: connect) smtpd.py wrote to LOGFILE,
# i.e. how many connections it has accepted.  A missing log counts as 0.
log=${1:?usage: count.sh LOGFILE [EVENT]}
event=${2:-connect}
if [ -f "$log" ]; then
	grep -c "^$event " "$log" || true
else
	echo 0
fi
