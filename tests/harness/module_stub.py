"""A stand-in for MeshPkiModule when unit-testing the logic a module runs (``fn(module)`` of
MeshPkiModule.run): the parameters validated against the module's real ARGUMENT_SPEC (defaults filled, aliases
resolved), check mode, warn(), no_log_values and get_authenticated_client() returning a FakeVault (counted, so a
test can assert that invalid input failed before the login)."""

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator


class StubModule(object):
    def __init__(self, argument_spec, params, client=None, check_mode=False):
        result = ArgumentSpecValidator(argument_spec).validate(dict(params))
        if result.error_messages:
            raise AssertionError("invalid test parameters: %s" % result.error_messages)
        self.params = result.validated_parameters
        self.client = client
        self.check_mode = check_mode
        self.warnings = []
        self.no_log_values = set()
        self.logins = 0

    def warn(self, message):
        self.warnings.append(message)

    def get_authenticated_client(self):
        self.logins += 1
        return self.client
