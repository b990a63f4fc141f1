# -*- coding: utf-8 -*-
# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Pure: Vault durations ("8760h", "1h30m", "10d", "600", 600) to whole seconds, and back to text."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")


def to_seconds(value, what="duration"):
    """Whole seconds for a Vault duration; None stays None. Raises ValueError naming ``what``."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("%s must be a duration such as '8760h' or a number of seconds, not %r" % (what, value))
    if isinstance(value, (int, float)):
        seconds = value
    else:
        text = str(value).strip().lower()
        if re.match(r"^\d+$", text):
            seconds = int(text)
        else:
            parts = _PART.findall(text)
            if not text or "".join(n + u for n, u in parts) != text:
                raise ValueError("%s '%s' is not a duration: use a number of seconds or units such as "
                                 "'8760h', '30m', '1h30m', '10d'" % (what, value))
            seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if seconds < 0:
        raise ValueError("%s must not be negative (got %r)" % (what, value))
    return int(round(seconds))


def to_text(seconds):
    """Short text for a number of seconds: 31536000 -> '8760h', 600 -> '10m', 90 -> '90s'."""
    if seconds is None:
        return None
    seconds = int(seconds)
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return "%d%s" % (seconds // size, unit)
    return "%ds" % seconds
