# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Lines of code of each module file: not blank, not a comment, not inside a string literal that stands alone
(DOCUMENTATION, EXAMPLES, RETURN, docstrings). Issue #16 asks for no module above ~60.

    python tools/module_loc.py [--max N] [dir]   (default plugins/modules; --max makes it exit 1 above N)
"""

import argparse
import ast
import io
import os
import sys
import tokenize


def code_lines(source):
    tree = ast.parse(source)
    skip = set()
    for node in ast.walk(tree):
        value = getattr(node, "value", None)
        if isinstance(node, (ast.Assign, ast.Expr)) and isinstance(value, ast.Constant) and \
                isinstance(value.value, str):
            skip.update(range(node.lineno, node.end_lineno + 1))
    lines = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
                        tokenize.ENDMARKER):
            continue
        for line in range(tok.start[0], tok.end[0] + 1):
            if line not in skip:
                lines.add(line)
    return len(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", nargs="?", default=os.path.join("plugins", "modules"))
    parser.add_argument("--max", type=int)
    args = parser.parse_args()
    worst = 0
    for name in sorted(os.listdir(args.directory)):
        if not name.endswith(".py") or name == "__init__.py":
            continue
        with open(os.path.join(args.directory, name)) as f:
            source = f.read()
        count = code_lines(source)
        worst = max(worst, count)
        print("%-34s %5d code lines %6d lines" % (name, count, source.count("\n")))
    return 1 if args.max is not None and worst > args.max else 0


if __name__ == "__main__":
    sys.exit(main())
