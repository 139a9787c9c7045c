#!/usr/bin/perl
# renegd.pl: an SMTP server that renegotiates TLS (docs/security.md A-12).
#
#   perl tests/hostile/renegd.pl --listen 127.0.11.2:25 --cert CHAIN.pem --key KEY.pem
#        --at ehlo|data|body|dot [--body-bytes N] [--hostname NAME] [--maildir DIR]
#        [--log FILE] [--pidfile FILE]
#
# A correct SMTP server (220, EHLO with STARTTLS, TLS 1.2 only: renegotiation
# does not exist in TLS 1.3) that sends a HelloRequest, i.e. starts a
# server-initiated renegotiation, at one point of the session:
#   ehlo   right after its reply to the post-TLS EHLO
#   data   right after its 354 to DATA
#   body   once it has read --body-bytes (default 1024) of the message
#   dot    right before its 250 to the final dot
# In modes ehlo, data and dot the reply and the HelloRequest leave in one
# TCP segment, so that the client meets both at once whatever the timing.
# Afterwards it goes on as a correct server: a client that ignores the
# HelloRequest or completes the renegotiation gets its message acknowledged
# (saved as DIR/NNN.eml + NNN.env, as tests/hostile/smtpd.py does).
# Python's ssl module cannot renegotiate, hence Perl and Net::SSLeay
# (Debian: libnet-ssleay-perl).
#
# Event log (--log, default stdout), one line per event:
#   listening ADDR at WHEN
#   connect N from ADDR           (tests/hostile/count.sh counts these)
#   command VERB
#   tls established VERSION CIPHER
#   misbehave hello-request sent
#   renegotiation completed VERSION CIPHER   (the client renegotiated)
#   tls read failed REASON        (e.g. "... alert no renegotiation")
#   message saved DIR/NNN.eml | message aborted N bytes
#   close N
#   stopped
# DIR/conn-N.log is a transcript: "C: plain|tls LINE", "S: plain|tls LINE".
# SIGTERM stops the server and its connections (exit 0).  Exit 2: usage,
# any other start-up failure: non-zero, the reason on stderr.
use strict;
use warnings;
use Getopt::Long;
use IO::Handle;
use IO::Socket::INET;
use POSIX ();
use Socket qw(IPPROTO_TCP TCP_CORK);
use Net::SSLeay;

my %o = (at => '', 'body-bytes' => 1024, hostname => 'reneg.hostile.test',
    maildir => '', log => '', pidfile => '');
GetOptions(\%o, 'listen=s', 'cert=s', 'key=s', 'at=s', 'body-bytes=i',
    'hostname=s', 'maildir=s', 'log=s', 'pidfile=s') or exit 2;
if (!$o{listen} || !$o{cert} || !$o{key} || $o{at} !~ /^(ehlo|data|body|dot)$/) {
	print STDERR "usage: renegd.pl --listen ADDR:PORT --cert CHAIN --key KEY --at ehlo|data|body|dot\n";
	exit 2;
}

my $logfh = \*STDOUT;
if ($o{log}) {
	open($logfh, '>>', $o{log}) or die "$o{log}: $!\n";
}
$logfh->autoflush(1);
sub logline { print $logfh "@_\n"; }

Net::SSLeay::load_error_strings();
Net::SSLeay::SSLeay_add_ssl_algorithms();
Net::SSLeay::randomize();
my $ctx = Net::SSLeay::CTX_new() or die "CTX_new failed\n";
Net::SSLeay::CTX_set_min_proto_version($ctx, Net::SSLeay::TLS1_2_VERSION());
Net::SSLeay::CTX_set_max_proto_version($ctx, Net::SSLeay::TLS1_2_VERSION());
Net::SSLeay::CTX_use_certificate_chain_file($ctx, $o{cert}) or die "cannot load $o{cert}\n";
Net::SSLeay::CTX_use_PrivateKey_file($ctx, $o{key}, Net::SSLeay::FILETYPE_PEM())
    or die "cannot load $o{key}\n";

my $srv = IO::Socket::INET->new(LocalAddr => $o{listen}, Listen => 64, ReuseAddr => 1,
    Proto => 'tcp') or do { print STDERR "listen $o{listen}: $@\n"; exit 1; };
my %kids;
$SIG{PIPE} = 'IGNORE';
my $parent = $$;
$SIG{TERM} = $SIG{INT} = sub {
	exit 0 if $$ != $parent;
	kill 'TERM', keys %kids;
	waitpid($_, 0) for keys %kids;
	unlink $o{pidfile} if $o{pidfile};
	logline('stopped');
	exit 0;
};
$SIG{CHLD} = sub { while ((my $p = waitpid(-1, POSIX::WNOHANG())) > 0) { delete $kids{$p}; } };
logline("listening $o{listen} at $o{at}");
if ($o{pidfile}) {
	open(my $p, '>', "$o{pidfile}.tmp") or die "$o{pidfile}: $!\n";
	print $p "$$\n";
	close $p;
	rename("$o{pidfile}.tmp", $o{pidfile}) or die "$o{pidfile}: $!\n";
}

# The state of the one session a child process serves.
my ($sock, $ssl, $tlog, $inbuf, $conn);
# Handshakes begun, that count when the HelloRequest went out, renegotiations.
my ($handshakes, $hr_mark, $renegotiated);

my $n = 0;
while (1) {
	my $c = $srv->accept or next;    # EINTR from SIGCHLD
	$n++;
	my $pid = fork;
	if (!defined $pid) {
		close $c;
		next;
	}
	if ($pid == 0) {
		$SIG{CHLD} = 'DEFAULT';
		close $srv;
		session($c, $n);
		POSIX::_exit(0);
	}
	$kids{$pid} = 1;
	close $c;
}

# ------------------------------------------------------------------ a session


sub printable {
	my $s = substr($_[0], 0, 300);
	$s =~ s/([^\x20-\x7e])/sprintf('\\x%02x', ord $1)/ge;
	return $s;
}

sub tr_line {
	my ($dir, $text) = @_;
	print $tlog "$dir: " . ($ssl ? 'tls' : 'plain') . ' ' . printable($text) . "\n" if $tlog;
}

sub done {
	logline("close $conn");
	POSIX::_exit(0);
}

sub ssl_errors {
	my @e;
	while (my $e = Net::SSLeay::ERR_get_error()) {
		push @e, Net::SSLeay::ERR_error_string($e);
	}
	return @e ? join('; ', @e) : 'connection closed';
}

sub send_reply {
	my ($text) = @_;
	tr_line('S', $text);
	if ($ssl) {
		Net::SSLeay::write($ssl, $text) > 0 or do {
			logline('tls write failed ' . ssl_errors());
			done();
		};
	} else {
		syswrite($sock, $text) or done();
	}
}

# fill: more input into $inbuf; returns 0 at EOF or on an error (logged).
sub fill {
	if ($ssl) {
		my ($got, $rv) = Net::SSLeay::read($ssl, 16384);
		if (!defined $got || $rv <= 0) {
			my $why = ssl_errors();
			logline("tls read failed $why");
			return 0;
		}
		$inbuf .= $got;
		return 1;
	}
	my $r = sysread($sock, my $got, 16384);
	return 0 if !$r;
	$inbuf .= $got;
	return 1;
}

sub read_line {
	while ($inbuf !~ /\n/) {
		return undef if !fill();
	}
	$inbuf =~ s/^([^\n]*\n)//;
	tr_line('C', $1);
	return $1;
}

sub hello_request {
	if (!Net::SSLeay::renegotiate($ssl) || Net::SSLeay::do_handshake($ssl) <= 0) {
		logline('misbehave hello-request failed ' . ssl_errors());
		done();
	}
	$hr_mark = $handshakes;
	logline('misbehave hello-request sent');
	tr_line('S', '(HelloRequest)');
}

# reply_and_hello_request TEXT: the reply, then the HelloRequest, corked
# into one segment.
sub reply_and_hello_request {
	setsockopt($sock, IPPROTO_TCP, TCP_CORK, 1);
	send_reply($_[0]);
	hello_request();
	setsockopt($sock, IPPROTO_TCP, TCP_CORK, 0);
}

sub next_name {
	opendir(my $d, $o{maildir}) or return '001';
	my $max = 0;
	for (readdir $d) {
		$max = $1 if /^(\d+)\.env$/ && $1 > $max;
	}
	return sprintf('%03d', $max + 1);
}

# read_data: the message up to CRLF.CRLF, dot-stuffing removed; undef when
# the client went away first.
sub read_data {
	my $raw = '';
	my $asked = 0;
	while (1) {
		my $i = index($inbuf, "\r\n.\r\n");
		if ($i >= 0 || ($raw eq '' && substr($inbuf, 0, 3) eq ".\r\n")) {
			$i = $i >= 0 ? $i + 2 : 0;
			$raw .= substr($inbuf, 0, $i);
			$inbuf = substr($inbuf, $i + 3);
			last;
		}
		if ($o{at} eq 'body' && !$asked && length($raw) + length($inbuf) >= $o{'body-bytes'}) {
			$asked = 1;
			hello_request();
		}
		# Keep what could be the start of the end marker.
		my $keep = length($inbuf) > 4 ? length($inbuf) - 4 : 0;
		$raw .= substr($inbuf, 0, $keep);
		$inbuf = substr($inbuf, $keep);
		if (!fill()) {
			logline('message aborted ' . length($raw . $inbuf) . ' bytes');
			return undef;
		}
	}
	tr_line('C', "(data) $raw");
	(my $msg = $raw) =~ s/^\.//mg;
	return $msg;
}

sub session {
	($sock, $conn) = @_;
	$inbuf = '';
	alarm 120;    # a client that never goes away
	logline("connect $conn from " . $sock->peerhost . ':' . $sock->peerport);
	if ($o{maildir}) {
		open($tlog, '>', "$o{maildir}/conn-$conn.log") or undef $tlog;
		$tlog->autoflush(1) if $tlog;
	}
	$handshakes = 0;
	$hr_mark = 1 << 30;
	$renegotiated = 0;
	my ($helo, $from, @rcpt) = ('', '');
	send_reply("220 $o{hostname} ESMTP renegd\r\n");
	while (defined(my $line = read_line())) {
		(my $cmd = $line) =~ s/\r?\n$//;
		my $verb = uc((split / /, $cmd)[0] // '');
		logline("command $verb");
		if ($verb eq 'EHLO' || $verb eq 'HELO') {
			$helo = $cmd;
			($from, @rcpt) = ('');
			my $caps = $ssl ? '' : "250-STARTTLS\r\n";
			my $r = $verb eq 'HELO' ? "250 $o{hostname}\r\n" :
			    "250-$o{hostname}\r\n${caps}250-PIPELINING\r\n250 8BITMIME\r\n";
			if ($ssl && $o{at} eq 'ehlo') {
				reply_and_hello_request($r);
			} else {
				send_reply($r);
			}
		} elsif ($verb eq 'STARTTLS' && !$ssl) {
			if ($inbuf ne '') {
				send_reply("554 5.5.1 data after STARTTLS\r\n");
				done();
			}
			send_reply("220 2.0.0 go ahead\r\n");
			$ssl = Net::SSLeay::new($ctx);
			Net::SSLeay::set_fd($ssl, fileno($sock));
			# Sending the HelloRequest is a "handshake" of its own to
			# OpenSSL (start, done): count only those the client began.
			Net::SSLeay::set_info_callback($ssl, sub {
				my (undef, $where) = @_;
				$handshakes++ if $where & Net::SSLeay::CB_HANDSHAKE_START();
				if ($handshakes > $hr_mark && ($where & Net::SSLeay::CB_HANDSHAKE_DONE())) {
					$renegotiated++;
					logline('renegotiation completed ' . Net::SSLeay::get_version($_[0])
					    . ' ' . Net::SSLeay::get_cipher($_[0]));
				}
			});
			if (Net::SSLeay::accept($ssl) <= 0) {
				logline('tls failed ' . ssl_errors());
				done();
			}
			logline('tls established ' . Net::SSLeay::get_version($ssl) . ' '
			    . Net::SSLeay::get_cipher($ssl));
			$helo = '';
		} elsif (!$ssl && $verb =~ /^(MAIL|RCPT|DATA|BDAT)$/) {
			send_reply("530 5.7.0 Must issue a STARTTLS command first\r\n");
		} elsif ($verb eq 'MAIL') {
			$from = $cmd;
			@rcpt = ();
			send_reply("250 2.1.0 Ok\r\n");
		} elsif ($verb eq 'RCPT') {
			push @rcpt, $cmd;
			send_reply("250 2.1.5 Ok\r\n");
		} elsif ($verb eq 'DATA') {
			if (!@rcpt) {
				send_reply("503 5.5.1 No valid recipients\r\n");
				next;
			}
			my $r = "354 End data with <CR><LF>.<CR><LF>\r\n";
			if ($o{at} eq 'data') {
				reply_and_hello_request($r);
			} else {
				send_reply($r);
			}
			my $msg = read_data();
			last if !defined $msg;
			my $name = next_name();
			if ($o{maildir}) {
				my $base = "$o{maildir}/$name";
				open(my $m, '>', "$base.eml.tmp") or die;
				print $m $msg;
				close $m;
				rename("$base.eml.tmp", "$base.eml");
				open(my $e, '>', "$base.env.tmp") or die;
				print $e "conn: $conn\nhelo: $helo\nmail: $from\n",
				    (map { "rcpt: $_\n" } @rcpt), "tls: yes\nbytes: " . length($msg) . "\n",
				    "renegotiations: $renegotiated\n";
				close $e;
				rename("$base.env.tmp", "$base.env");
				logline("message saved $base.eml");
			}
			$r = "250 2.0.0 Ok: queued as $name\r\n";
			if ($o{at} eq 'dot') {
				setsockopt($sock, IPPROTO_TCP, TCP_CORK, 1);
				hello_request();
				send_reply($r);
				setsockopt($sock, IPPROTO_TCP, TCP_CORK, 0);
			} else {
				send_reply($r);
			}
			($from, @rcpt) = ('');
		} elsif ($verb eq 'RSET' || $verb eq 'NOOP') {
			($from, @rcpt) = ('') if $verb eq 'RSET';
			send_reply("250 2.0.0 Ok\r\n");
		} elsif ($verb eq 'QUIT') {
			send_reply("221 2.0.0 Bye\r\n");
			Net::SSLeay::shutdown($ssl) if $ssl;
			last;
		} else {
			send_reply("502 5.5.2 Error: command not recognized\r\n");
		}
	}
	done();
}
