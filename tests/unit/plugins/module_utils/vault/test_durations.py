import pytest

from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.durations import to_seconds, to_text


@pytest.mark.parametrize("value, seconds", [
    (None, None), (600, 600), ("600", 600), ("600s", 600), ("10m", 600), ("8760h", 31536000),
    ("43800h", 157680000), ("1h30m", 5400), ("10d", 864000), ("1.5h", 5400), ("1500ms", 2), (" 2H ", 7200),
])
def test_to_seconds(value, seconds):
    assert to_seconds(value) == seconds


@pytest.mark.parametrize("value", ["", "h", "10x", "1 h", "ten", "-5", "5h-1m", True])
def test_to_seconds_rejects(value):
    with pytest.raises(ValueError) as err:
        to_seconds(value, "ttl")
    assert "ttl" in str(err.value)


@pytest.mark.parametrize("seconds, text", [(31536000, "8760h"), (600, "10m"), (90, "90s"), (0, "0s"), (None, None)])
def test_to_text(seconds, text):
    assert to_text(seconds) == text


@pytest.mark.parametrize("value", [-5, -0.5, -3600.0])
def test_to_seconds_rejects_negative_numbers(value):
    # A negative number passes the text checks (it is not text): the sign check alone stops it, and names the option.
    with pytest.raises(ValueError, match=r"^ttl must not be negative \(got %r\)$" % value):
        to_seconds(value, "ttl")


def test_to_seconds_names_a_duration_by_default():
    with pytest.raises(ValueError, match=r"^duration 'soon' is not a duration"):
        to_seconds("soon")
