# -*- coding: utf-8 -*-
# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What a CA request asks for, as the two PKI backends (``pki/root``, ``pki/intermediate``) share it: key type
and size, the subject, TTLs in seconds and as text for messages. Pure code."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.meshpki.vault_ca.plugins.module_utils.errors import MeshPkiError
from ansible_collections.meshpki.vault_ca.plugins.module_utils.inputs import check_subject
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.durations import to_seconds, to_text

# Key types and sizes Istio accepts for a CA (istiod signs workload certificates with it).
KEY_SIZES = {"rsa": (2048, 3072, 4096), "ec": (256, 384)}
DEFAULT_KEY_BITS = {"rsa": 2048, "ec": 256}

# Subject options, their attribute label and OID. Vault takes the lists as JSON arrays.
SUBJECT_ATTRIBUTES = (
    ("common_name", "CN", "2.5.4.3"),
    ("organization", "O", "2.5.4.10"),
    ("ou", "OU", "2.5.4.11"),
    ("locality", "L", "2.5.4.7"),
    ("province", "ST", "2.5.4.8"),
    ("country", "C", "2.5.4.6"),
)
_LABELS = dict((oid, label) for _name, label, oid in SUBJECT_ATTRIBUTES)
_ORDER = dict((label, index) for index, (_name, label, _oid) in enumerate(SUBJECT_ATTRIBUTES))

SUBJECT_ARGSPEC = dict(
    common_name=dict(type="str"),
    organization=dict(type="list", elements="str"),
    ou=dict(type="list", elements="str"),
    country=dict(type="list", elements="str"),
    locality=dict(type="list", elements="str"),
    province=dict(type="list", elements="str"),
)


def seconds(value, what):
    """to_seconds() with a MeshPkiError instead of ValueError."""
    try:
        return to_seconds(value, what)
    except ValueError as e:
        raise MeshPkiError("%s. Nothing was changed." % e)


def human(secs):
    """'43800h (5y)' style text for a number of seconds (for messages)."""
    secs = int(round(secs))
    if secs >= 3600:
        hours, minutes = divmod(int(round(secs / 60.0)), 60)
        text = "%dh" % hours + ("%dm" % minutes if minutes else "")
    else:
        text = to_text(secs)
    days = secs / 86400.0
    if days >= 365:
        return "%s (%.1f years)" % (text, days / 365.0)
    if days >= 1:
        return "%s (%.1f days)" % (text, days)
    return text


# ---------------------------------------------------------------------------------------------------------
# keys and subjects
# ---------------------------------------------------------------------------------------------------------

def key_spec(key_type, key_bits):
    """Validate a key type/size pair for a CA Istio will use; returns ``(key_type, bits)``."""
    if key_type not in KEY_SIZES:
        raise MeshPkiError("key_type '%s' is not supported: use rsa or ec (Istio accepts RSA and ECDSA CA keys). "
                           "Nothing was changed." % key_type)
    bits = key_bits if key_bits else DEFAULT_KEY_BITS[key_type]
    if bits not in KEY_SIZES[key_type]:
        if key_type == "rsa":
            why = "RSA keys for an Istio CA must have 2048, 3072 or 4096 bits"
        else:
            why = "EC keys for an Istio CA must be P-256 (256) or P-384 (384)"
        raise MeshPkiError("key_bits %s is not valid with key_type %s: %s. Nothing was changed."
                           % (bits, key_type, why))
    return key_type, bits


def key_text(key_type, bits):
    return "%s %s" % (key_type.upper(), bits)


def subject_text(pairs):
    """'CN=tetrate.io, O=Tetrate' for a list of (label, value) pairs, in a fixed order."""
    ordered = sorted(pairs, key=lambda pair: (_ORDER.get(pair[0], len(_ORDER)), pair[0], pair[1]))
    return ", ".join("%s=%s" % pair for pair in ordered) or "(empty)"


def cert_subject_pairs(cert):
    """The subject of ``cert`` as sorted (label, value) pairs (multi-valued RDNs flattened)."""
    pairs = []
    for attribute in cert.subject:
        oid = attribute.oid.dotted_string
        # ours (CN, O, ...), else cryptography's name (emailAddress), else the dotted OID: cryptography names
        # every OID it does not know "Unknown OID", which would make two different attributes look alike.
        name = attribute.oid._name  # pylint: disable=protected-access
        label = _LABELS.get(oid) or (oid if name == "Unknown OID" else name)
        pairs.append((label, attribute.value))
    return sorted(pairs)


class Subject(object):
    """The subject the user asks for: common_name plus optional O/OU/L/ST/C lists."""

    def __init__(self, common_name, **lists):
        self.common_name = (common_name or "").strip()
        self.lists = dict((name, [v for v in (lists.get(name) or []) if v and v.strip()])
                          for name, _label, _oid in SUBJECT_ATTRIBUTES[1:])

    @classmethod
    def from_params(cls, params):
        """The subject of ``params``; MeshPkiError naming the option for a control, bidi or line-separator
        character in any field, before anything is sent."""
        check_subject("common_name", params.get("common_name"))
        for name, _label, _oid in SUBJECT_ATTRIBUTES[1:]:
            for index, value in enumerate(params.get(name) or []):
                check_subject("%s[%d]" % (name, index), value)
        subject = cls(params.get("common_name"), **dict((name, params.get(name))
                                                        for name, _l, _o in SUBJECT_ATTRIBUTES[1:]))
        if not subject.common_name:
            raise MeshPkiError("common_name must not be empty: the CA certificate needs a subject (for example "
                               "'tetrate.io Intermediate Authority'). Nothing was changed.")
        return subject

    def pairs(self):
        pairs = [("CN", self.common_name)]
        for name, label, _oid in SUBJECT_ATTRIBUTES[1:]:
            pairs.extend((label, value) for value in self.lists[name])
        return sorted(pairs)

    @property
    def text(self):
        return subject_text(self.pairs())

    def payload(self):
        """The subject parameters of Vault's generate and sign endpoints."""
        payload = {"common_name": self.common_name}
        for name, values in self.lists.items():
            if values:
                payload[name] = list(values)
        return payload

    def difference(self, cert):
        """None when ``cert`` has exactly this subject (order of attributes aside), else a sentence."""
        have = cert_subject_pairs(cert)
        if have == self.pairs():
            return None
        return "subject is '%s', requested '%s'" % (subject_text(have), self.text)
