from __future__ import annotations

import pytest
from superres_fn import ConfigError, Endpoint, load_settings


def test_defaults():
    settings = load_settings({"DEST_PREFIX": "superres/"})
    assert settings.dest_prefix == "superres/"
    assert settings.magnify == 2
    assert settings.dest_bucket is None
    assert settings.accepted_suffixes == ("jpg", "jpeg", "png", "bmp", "webp")
    assert settings.max_input_bytes == 5 * 1024 * 1024
    assert settings.skip_existing is True
    assert settings.endpoint is None


def test_all_values_parsed():
    settings = load_settings(
        {
            "DEST_PREFIX": "/out/x4",
            "MAGNIFY": "4",
            "DEST_BUCKET": "results-1250000000",
            "ACCEPTED_SUFFIXES": " JPG, .png ",
            "MAX_INPUT_BYTES": "1000",
            "SKIP_EXISTING": "off",
            "TENCENTCLOUD_REGION": "ap-shanghai",
            "COS_ENDPOINT_URL": "http://127.0.0.1:9000",
        }
    )
    assert settings.dest_prefix == "out/x4/"
    assert settings.magnify == 4
    assert settings.dest_bucket == "results-1250000000"
    assert settings.accepted_suffixes == ("jpg", "png")
    assert settings.max_input_bytes == 1000
    assert settings.skip_existing is False
    assert settings.region == "ap-shanghai"
    assert settings.endpoint == Endpoint("http", "127.0.0.1", 9000)


def test_settings_are_frozen():
    settings = load_settings({"DEST_PREFIX": "superres/"})
    with pytest.raises(AttributeError):
        settings.magnify = 4  # type: ignore[misc]


@pytest.mark.parametrize(
    ("env", "variable", "needle"),
    [
        ({}, "DEST_PREFIX", "superres/"),
        ({"DEST_PREFIX": "/"}, "DEST_PREFIX", "may not be empty"),
        ({"DEST_PREFIX": "a/../b"}, "DEST_PREFIX", "'..'"),
        ({"DEST_PREFIX": "x/", "MAGNIFY": "3"}, "MAGNIFY", "2 or 4"),
        ({"DEST_PREFIX": "x/", "DEST_BUCKET": "NoAppid"}, "DEST_BUCKET", "<name>-<appid>"),
        ({"DEST_PREFIX": "x/", "ACCEPTED_SUFFIXES": ",,"}, "ACCEPTED_SUFFIXES", "comma list"),
        ({"DEST_PREFIX": "x/", "MAX_INPUT_BYTES": "5MB"}, "MAX_INPUT_BYTES", "whole number"),
        ({"DEST_PREFIX": "x/", "MAX_INPUT_BYTES": "0"}, "MAX_INPUT_BYTES", "whole number"),
        ({"DEST_PREFIX": "x/", "SKIP_EXISTING": "maybe"}, "SKIP_EXISTING", "true/false"),
        ({"DEST_PREFIX": "x/", "COS_ENDPOINT_URL": "127.0.0.1:9000"}, "COS_ENDPOINT_URL", "http://"),
        ({"DEST_PREFIX": "x/", "COS_TIMEOUT_S": "-1"}, "COS_TIMEOUT_S", "positive"),
    ],
)
def test_invalid_setting_names_the_variable_and_allowed_values(env, variable, needle):
    with pytest.raises(ConfigError) as info:
        load_settings(env)
    assert info.value.variable == variable
    assert str(info.value).startswith(variable + ":")
    assert needle in str(info.value)
