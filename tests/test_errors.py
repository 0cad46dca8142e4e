"""ConfigError: problem lists, rendering, and pydantic -> key-path translation."""

from __future__ import annotations

import pickle

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from trm_otel.errors import ConfigError, TrmOtelError


class ErrTestEndpoint(BaseModel):
    model_config = ConfigDict(extra="forbid")
    endpoint: str = "127.0.0.1:4317"
    max_recv_msg_size_mib: int = Field(default=4, gt=0)

    @field_validator("endpoint")
    @classmethod
    def _host_port(cls, value: str) -> str:
        if ":" not in value:
            raise ValueError("not host:port")
        return value


class ErrTestToken(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    token: str
    tenant: str = "default"
    role_name: str = Field(default="viewer", alias="role")


class ErrTestRoot(BaseModel):
    model_config = ConfigDict(extra="forbid")
    protocols: dict[str, ErrTestEndpoint] = {}
    tokens: list[ErrTestToken] = []
    api: ErrTestEndpoint | None = None
    retention: dict[str, float] = {}


def _config_error(data: object, key_path: str = "", **kwargs: object) -> ConfigError:
    with pytest.raises(ValidationError) as caught:
        ErrTestRoot.model_validate(data)
    return ConfigError.from_validation_error(caught.value, key_path, **kwargs)


def test_problems_render_one_line_each() -> None:
    err = ConfigError([("a.b", "bad"), ("c", "worse"), ("", "no location")])
    assert err.problems == (("a.b", "bad"), ("c", "worse"), ("", "no location"))
    assert str(err) == "a.b: bad\nc: worse\nno location"


def test_hierarchy() -> None:
    err = ConfigError([("x", "y")])
    assert isinstance(err, TrmOtelError)
    assert isinstance(err, ValueError)
    assert issubclass(TrmOtelError, Exception)


def test_empty_problems_still_read() -> None:
    assert str(ConfigError([])) == "invalid configuration"


def test_pickles_with_problems() -> None:
    err = ConfigError([("a", "b")])
    again = pickle.loads(pickle.dumps(err))
    assert isinstance(again, ConfigError)
    assert again.problems == err.problems
    assert str(again) == "a: b"


def test_every_problem_with_its_key_path() -> None:
    err = _config_error(
        {
            "protocols": {"grpc": {"endpoint": "localhost", "max_recv_msg_size_mib": 0}},
            "tokens": [{"token": "t"}, {"tenant": "x"}],
        },
        "receivers.otlp",
    )
    assert err.problems == (
        ("receivers.otlp.protocols.grpc.endpoint", "not host:port"),
        ("receivers.otlp.protocols.grpc.max_recv_msg_size_mib", "Input should be greater than 0"),
        ("receivers.otlp.tokens[1].token", "Field required"),
    )
    assert str(err) == (
        "receivers.otlp.protocols.grpc.endpoint: not host:port\n"
        "receivers.otlp.protocols.grpc.max_recv_msg_size_mib: Input should be greater than 0\n"
        "receivers.otlp.tokens[1].token: Field required"
    )


def test_unknown_keys_suggest_the_closest_known_key() -> None:
    err = _config_error(
        {
            "protocol": {},
            "protocols": {"http": {"endpoit": "a:1"}},
            "tokens": [{"token": "t", "rol": "admin"}],
        }
    )
    assert set(err.problems) == {
        ("protocol", "unknown key (did you mean 'protocols'?)"),
        ("protocols.http.endpoit", "unknown key (did you mean 'endpoint'?)"),
        ("tokens[0].rol", "unknown key (did you mean 'role'?)"),
    }
    assert len(err.problems) == 3


def test_unknown_key_without_a_close_match() -> None:
    err = _config_error({"zzz": 1}, "root")
    assert str(err) == "root.zzz: unknown key"


def test_union_tags_are_dropped_from_paths() -> None:
    err = _config_error({"api": {"endpoint": "nohost", "endpont": "x"}}, "svc")
    assert err.problems == (
        ("svc.api.endpoint", "not host:port"),
        ("svc.api.endpont", "unknown key (did you mean 'endpoint'?)"),
    )


def test_no_hint_means_no_suggestion() -> None:
    err = _config_error({"protocol": {}}, known_keys_hint=None)
    assert str(err) == "protocol: unknown key"


def test_explicit_model_hint() -> None:
    err = _config_error({"tokenz": []}, "auth", known_keys_hint=ErrTestRoot)
    assert str(err) == "auth.tokenz: unknown key (did you mean 'tokens'?)"


def test_callable_hint_gets_the_parent_location() -> None:
    seen = []

    def keys(loc: tuple) -> list[str]:
        seen.append(loc)
        return ["tokens", "totems"]

    err = _config_error({"tokns": []}, known_keys_hint=keys)
    assert seen == [()]
    assert str(err) == "tokns: unknown key (did you mean 'tokens'?)"


def test_keys_that_would_read_ambiguously_are_quoted() -> None:
    err = _config_error({"protocols": {"a.b": {"endpoint": "x"}, "GET /x": {"endpoint": "y"}}})
    assert err.problems == (
        ('protocols["a.b"].endpoint', "not host:port"),
        ("protocols.GET /x.endpoint", "not host:port"),
    )


def test_bad_mapping_key() -> None:
    err = _config_error({"retention": {1: 2.0}}, "storage")
    assert str(err) == "storage.retention.1: key: Input should be a valid string"


def test_root_level_problem_uses_the_key_path_alone() -> None:
    err = _config_error([1, 2], "processors.latency")
    assert str(err) == "processors.latency: Input should be a valid dictionary or instance of ErrTestRoot"
