#!/usr/bin/env python3
"""tests/hostile/smtpd.py, unchanged, except that its TLS context accepts
any certificate and key as its own: OpenSSL security level 0 is set before
the chain is loaded.  Python's default ciphers carry @SECLEVEL=2, where
OpenSSL refuses to *serve* an RSA-1024 key ("ee key too small") or a SHA-1
signed certificate ("ca md too weak"); test_cert_matrix.sh needs a server
that presents them, so that the client (mxtls) is the one that decides.

usage: smtpd_anycert.py SMTPD_ARGS...   (the arguments of smtpd.py)
"""
import os
import runpy
import ssl
import sys

_load = ssl.SSLContext.load_cert_chain


def _load_any(self, *args, **kwargs):
    self.set_ciphers("DEFAULT:@SECLEVEL=0")
    return _load(self, *args, **kwargs)


ssl.SSLContext.load_cert_chain = _load_any
here = os.path.dirname(os.path.abspath(__file__))
smtpd = os.path.join(here, "..", "..", "..", "hostile", "smtpd.py")
sys.argv[0] = smtpd
runpy.run_path(smtpd, run_name="__main__")
