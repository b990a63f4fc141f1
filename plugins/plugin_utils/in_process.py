# -*- coding: utf-8 -*-
# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Where the collection's modules run: in the controller's worker on the local connection, else as modules.

Every module of the collection has an action plugin of the same name (``plugins/action/<module>.py``, a
subclass of :class:`ModuleAction`). On the local connection the module runs **in-process**: the worker that
runs the task imports the module file and calls its ``main()`` - the same ``AnsibleModule`` (argument
validation, aliases, defaults, check mode, diff, no_log masking, warnings) and the same ``module_utils`` code a
module process would run - with the arguments, the serialization and the result parsing of
``ActionBase._execute_module()``, but without building an AnsiballZ payload and without starting a shell and a
Python. Any other case falls back to ``_execute_module()``, the normal module execution.

The rule (:meth:`ModuleAction.remote_reason`): in-process when all of

- the switch is on: the variable ``meshpki_vault_ca_in_process`` if set, else the controller's environment
  variable ``MESHPKI_IN_PROCESS`` if set, else on;
- the task's connection (the delegated host's, with ``delegate_to``) is ``ansible.builtin.local``;
- no ``become`` (the module would run as another user) and no ``async`` (async_wrapper runs it detached);
- the Python the module would run under is the controller's: ``ansible_python_interpreter`` of the target (of the
  delegated host, with ``delegate_to``), else the ``INTERPRETER_PYTHON`` setting, names this same Python (same
  ``bin`` directory, same executable), or is ``auto*`` and this Python has the collection's requirements
  (:data:`REQUIREMENTS`, looked up without importing them). A host set to another Python (a virtualenv with other
  libraries), or ``auto`` where only the discovered Python has the libraries, keeps running the modules there.

Module defaults (``module_defaults``, also the ``group/meshpki.vault_ca.vault`` and ``.istio`` action groups of
meta/runtime.yml) are merged into the task's arguments by the task executor before any action plugin runs
(``get_action_args_with_defaults``; ansible-core 2.19 does it when the task is post-validated): both paths get
the same arguments.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import importlib
import importlib.util
import inspect
import io
import json
import os
import sys
import traceback
from collections.abc import Sequence

from ansible import constants as C
from ansible.errors import AnsibleActionFail
from ansible.module_utils import basic
from ansible.module_utils.common import warnings as module_warnings
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display
from ansible.utils.vars import merge_hash
from ansible.vars.clean import remove_internal_keys

try:
    from ansible.module_utils import _internal as module_internal
except ImportError:  # ansible-core < 2.19: module_utils do not know where they run
    module_internal = None

display = Display()

SWITCH_VAR = "meshpki_vault_ca_in_process"
SWITCH_ENV = "MESHPKI_IN_PROCESS"
PRELOAD_ENV = "MESHPKI_PRELOAD"
MODULES_PACKAGE = "ansible_collections.meshpki.vault_ca.plugins.modules"

# The serialization profile ansible-core (2.19+) gives a module without METADATA, as ours are: the arguments are
# encoded and the result decoded with it, as for the AnsiballZ payload (tests/unit check it against core).
PROFILE = "legacy"

# The import names of the collection's requirements.txt (module_utils.module.LIBRARIES): with an ``auto``
# interpreter the module runs in-process only when the controller's Python has them all.
REQUIREMENTS = ("cryptography", "hvac", "kubernetes", "yaml")

# Globals of ansible.module_utils a module run sets; each run starts from a clean state, as a new process does,
# and the worker gets its own back afterwards (a loop runs every item in the same worker).
_BASIC_GLOBALS = ("_ANSIBLE_ARGS", "_ANSIBLE_PROFILE", "_PARSED_MODULE_ARGS")
_WARNING_GLOBALS = ("_global_warnings", "_global_deprecations")


def same_python(interpreter, executable=None):
    """True when ``interpreter`` is the Python running this process: the same ``bin`` directory (a virtualenv is
    found from there) and the same executable once links are followed. ``/usr/bin/python3`` is not a virtualenv's
    ``bin/python`` even though the one links to the other."""
    executable = executable or sys.executable
    if not interpreter or not executable:
        return False
    interpreter = os.path.expanduser(interpreter.strip())
    if not os.path.isabs(interpreter):
        return False
    real = os.path.realpath
    return (real(os.path.dirname(interpreter)) == real(os.path.dirname(executable))
            and real(interpreter) == real(executable))


def missing_requirements(names=REQUIREMENTS):
    """The libraries of ``names`` this Python cannot import (found with find_spec: nothing is imported)."""
    return [name for name in names if importlib.util.find_spec(name) is None]


def switch_value(task_vars, templar, environ=None):
    """The in-process switch: the variable, else the environment variable, else on. An unreadable value fails."""
    environ = os.environ if environ is None else environ
    if task_vars.get(SWITCH_VAR) is not None:
        value, origin = templar.template(task_vars[SWITCH_VAR]), "the variable %s" % SWITCH_VAR
    elif environ.get(SWITCH_ENV, "").strip():
        value, origin = environ[SWITCH_ENV].strip(), "the environment variable %s" % SWITCH_ENV
    else:
        return True
    try:
        return boolean(value, strict=True)
    except TypeError:
        raise AnsibleActionFail("%s is %r; set it to true or false (false runs the collection's modules as "
                                "module processes even on the local connection)." % (origin, value)) from None


def encode_arguments(module_args, profile=PROFILE):
    """The module's input as the AnsiballZ payload carries it: {"ANSIBLE_MODULE_ARGS": ...} as JSON bytes."""
    params = dict(ANSIBLE_MODULE_ARGS=module_args)
    try:
        from ansible.module_utils.common.json import Direction, get_module_encoder
    except ImportError:  # ansible-core < 2.19
        from ansible.parsing.ajson import AnsibleJSONEncoder
        return json.dumps(params, cls=AnsibleJSONEncoder, vault_to_text=True).encode("utf-8")
    return json.dumps(params, cls=get_module_encoder(profile, Direction.CONTROLLER_TO_MODULE)).encode("utf-8")


@contextlib.contextmanager
def module_context(arguments, environment, profile=PROFILE):
    """What the module process would have: its arguments where AnsibleModule reads them, the task's
    ``environment`` on top of the controller's environment, no warnings of an earlier run, its own stdout and
    stderr (returned as the two StringIO objects), and module_utils acting as on a target (ansible-core 2.19+
    ``is_controller``: warnings and deprecations go into the result, not straight to the display). Everything is
    put back afterwards."""
    saved_controller = getattr(module_internal, "is_controller", None)
    saved_basic = dict((name, getattr(basic, name, None)) for name in _BASIC_GLOBALS)
    saved_warnings = dict((name, getattr(module_warnings, name)) for name in _WARNING_GLOBALS
                          if hasattr(module_warnings, name))
    saved_environ = dict(os.environ)
    saved_cwd = os.getcwd()
    stdout, stderr = io.StringIO(), io.StringIO()
    try:
        basic._ANSIBLE_ARGS = arguments
        basic._ANSIBLE_PROFILE = profile
        basic._PARSED_MODULE_ARGS = None
        if saved_controller is not None:
            module_internal.is_controller = False
        for name, value in saved_warnings.items():
            setattr(module_warnings, name, type(value)())
        for name, value in environment.items():
            os.environ[name] = value if isinstance(value, str) else str(value)
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            yield stdout, stderr
    finally:
        if saved_controller is not None:
            module_internal.is_controller = saved_controller
        for name, value in saved_basic.items():
            setattr(basic, name, value)
        for name, value in saved_warnings.items():
            setattr(module_warnings, name, value)
        if dict(os.environ) != saved_environ:
            os.environ.clear()
            os.environ.update(saved_environ)
        if os.getcwd() != saved_cwd:
            os.chdir(saved_cwd)


def _crash_output(exception, profile):
    """A module that raised instead of exiting: what AnsiballZ prints for it (ansible-core 2.19+), or what a
    crashed Python leaves (the traceback on stderr, exit code 1)."""
    try:
        from ansible.module_utils._internal._ansiballz._loader import _handle_exception
    except ImportError:  # ansible-core < 2.19: the process dies with the traceback
        sys.stderr.write(traceback.format_exc())
        return 1
    try:
        _handle_exception(exception, profile)
    except SystemExit as e:
        return e.code
    return 1  # pragma: no cover - _handle_exception always exits


def run_main(main, arguments, environment, profile=PROFILE):
    """Call a module's ``main()`` in this process with ``arguments`` (encode_arguments()); returns
    ``dict(rc=..., stdout=..., stderr=..., crashed=...)`` as _low_level_execute_command() would for the module."""
    crashed, rc = False, 1
    with module_context(arguments, environment, profile) as (stdout, stderr):
        try:
            main()
            raise RuntimeError("New-style module did not handle its own exit.")
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except Exception as e:  # as AnsiballZ: not BaseException (KeyboardInterrupt stops the run)
            crashed = True
            rc = _crash_output(e, profile)
    return dict(rc=rc, stdout=stdout.getvalue(), stderr=stderr.getvalue(), crashed=crashed)


def secret_values(argument_spec, module_args):
    """The values a module run masks (no_log options, private keys pasted into other options), found without
    running the module: for output of a module that crashed before it could mask anything."""
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

    from ansible_collections.meshpki.vault_ca.plugins.module_utils.inputs import private_key_options

    params = dict((k, v) for k, v in module_args.items() if not k.startswith("_ansible_"))
    try:
        result = ArgumentSpecValidator(argument_spec).validate(params)
        secrets = set(result._no_log_values)
        validated = result.validated_parameters
    except Exception:  # masking must not fail: fall back to the values as given
        secrets, validated = set(), params
    for _option, values in private_key_options(validated, argument_spec):
        secrets.update(values)
    return set(s for s in secrets if isinstance(s, str) and s)


def mask_text(text, secrets):
    """``text`` with every secret (also JSON-escaped, as it appears in JSON output) replaced by ********."""
    for secret in sorted(secrets, key=len, reverse=True):
        for form in (secret, json.dumps(secret)[1:-1]):
            text = text.replace(form, "********")
    return text


def preload(leaf, environ=None):
    """Import the module file ``leaf`` - and with it the module_utils and libraries (hvac, requests, ...) it loads -
    into this process, when the in-process switch's environment variable and ``MESHPKI_PRELOAD`` do not say
    otherwise. Returns True when the module is (now) imported.

    Called when an action plugin class is defined (``ModuleAction.__init_subclass__``). ansible-core's linear and
    free strategies load each task's action plugin class in the controller's main process (to look for
    ``BYPASS_HOST_LOOP``) before they fork a worker per task and host, so every worker starts with these imports
    done instead of paying them again (about 0.3 s of CPU per module task and host, the largest part of a no-change
    module task). Never fails: a module that cannot be imported says why when its task runs."""
    environ = os.environ if environ is None else environ
    for name in (PRELOAD_ENV, SWITCH_ENV):
        value = environ.get(name, "").strip()
        if value:
            try:
                if not boolean(value, strict=True):
                    return False
            except TypeError:
                return False  # switch_value() names the bad value when a task runs
    try:
        importlib.import_module("%s.%s" % (MODULES_PACKAGE, leaf))
    except Exception:
        return False
    return True


class ModuleAction(ActionBase):
    """The action plugin of every module of the collection: ``class ActionModule(ModuleAction)`` in
    ``plugins/action/<module>.py``; the module is the one named like the action plugin's file."""

    _supports_check_mode = True
    _supports_async = True

    def __init_subclass__(cls, **kwargs):
        super(ModuleAction, cls).__init_subclass__(**kwargs)
        preload(cls.module_leaf())

    @classmethod
    def module_leaf(cls):
        return cls.__module__.rpartition(".")[2]

    def run(self, tmp=None, task_vars=None):
        result = super(ModuleAction, self).run(tmp, task_vars)
        del tmp  # tmp no longer has any effect
        task_vars = task_vars if task_vars is not None else {}
        reason = self.remote_reason(task_vars)
        name = "meshpki.vault_ca.%s" % self.module_leaf()
        host = self._play_context.remote_addr
        if reason is None:
            display.vvv("%s: in-process in the controller's worker (local connection)" % name, host=host)
            return merge_hash(result, self.run_in_process(task_vars))
        display.vvv("%s: as a module process (%s)" % (name, reason), host=host)
        wrap_async = self._task.async_val and not self._connection.has_native_async
        result = merge_hash(result, self._execute_module(task_vars=task_vars, wrap_async=wrap_async))
        if not wrap_async:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result

    def _target_vars(self, task_vars):
        """The variables of the host the module runs on (the delegated host with delegate_to)."""
        if self._task.delegate_to:
            delegated = (task_vars.get("ansible_delegated_vars") or {}).get(self._task.delegate_to)
            if delegated is not None:
                return delegated
        return task_vars

    def interpreter(self, task_vars):
        """The Python the module would run under: ansible_python_interpreter, else INTERPRETER_PYTHON."""
        target_vars = self._target_vars(task_vars)
        if target_vars.get("ansible_python_interpreter") is not None:
            return str(self._templar.template(target_vars["ansible_python_interpreter"]))
        return str(C.config.get_config_value("INTERPRETER_PYTHON", variables=target_vars))

    def remote_reason(self, task_vars):
        """None when the module runs in-process, else why it runs as a module process (shown at -vvv)."""
        if not switch_value(task_vars, self._templar):
            return "%s or %s is false" % (SWITCH_VAR, SWITCH_ENV)
        transport = getattr(self._connection, "transport", None)
        if transport not in ("local", "ansible.builtin.local"):
            return "connection %s, not local" % transport
        if self._play_context.become:
            return "become is on"
        if self._task.async_val:
            return "async task"
        interpreter = self.interpreter(task_vars)
        if interpreter.startswith("auto"):
            missing = missing_requirements()
            if missing:
                return ("interpreter %s and the controller's Python %s lacks %s: the discovered Python runs it"
                        % (interpreter, sys.executable, ", ".join(missing)))
        elif not same_python(interpreter):
            return "ansible_python_interpreter %s is not the controller's Python %s" % (interpreter, sys.executable)
        return None

    def load_module(self):
        """The module file, imported in this worker (from the collection, as its AnsiballZ payload would be)."""
        return importlib.import_module("%s.%s" % (MODULES_PACKAGE, self.module_leaf()))

    def run_in_process(self, task_vars):
        """The module's main() in this worker, with what _execute_module() would send it, parsed and cleaned as
        _execute_module() does."""
        module_name = self._task.action
        module_args = dict(self._task.args)
        self._update_module_args(module_name, module_args, task_vars)
        environment = {}
        self._compute_environment_string(environment)

        try:
            module = self.load_module()
            main, argument_spec = module.main, getattr(module, "ARGUMENT_SPEC", {})
        except Exception as e:
            raise AnsibleActionFail("meshpki.vault_ca.%s cannot be loaded in the controller's worker: %s: %s. Set "
                                    "%s=0 to run it as a module process." % (self.module_leaf(), type(e).__name__,
                                                                             e, SWITCH_ENV)) from e
        res = run_main(main, encode_arguments(module_args), environment)
        if res.pop("crashed"):
            secrets = secret_values(argument_spec, module_args)
            res["stdout"], res["stderr"] = mask_text(res["stdout"], secrets), mask_text(res["stderr"], secrets)
        data = self._parse_result(res)

        # as _execute_module(): internal keys and the 'results' key of a module
        data.pop("_ansible_suppress_tmpdir_delete", None)
        results = data.get("results")
        if "results" in data and (not isinstance(results, Sequence) or isinstance(results, str)):
            data["ansible_module_results"] = data.pop("results")
            display.warning("Found internal 'results' key in module return, renamed to 'ansible_module_results'.")
        remove_internal_keys(data)
        for stream in ("stdout", "stderr"):
            if stream in data and "%s_lines" % stream not in data:
                data["%s_lines" % stream] = (data.get(stream) or u"").splitlines()
        return data

    def _parse_result(self, res):
        if "profile" in inspect.signature(self._parse_returned_data).parameters:
            return self._parse_returned_data(res, PROFILE)
        return self._parse_returned_data(res)  # ansible-core < 2.19: no serialization profile
