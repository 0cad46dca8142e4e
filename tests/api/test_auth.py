"""The authenticator itself: principals by token, and swapping the token set on a reload."""

from __future__ import annotations

import pytest

from trm_otel.api.auth import OPEN, Authenticator, TokenConfig
from trm_otel.errors import ConfigError

A, B = "token-a-0123456789abcdef", "token-b-0123456789abcdef"


def token(value: str, name: str, role: str = "viewer", tenant: str = "default") -> TokenConfig:
    return TokenConfig.model_validate({"token": value, "name": name, "role": role, "tenant": tenant})


def test_principals_by_bearer_token_and_none_for_anything_else() -> None:
    auth = Authenticator([token(A, "alice", "editor", "shop")])
    principal = auth.principal(f"Bearer {A}")
    assert principal is not None and (principal.name, principal.tenant, principal.role) == ("alice", "shop", "editor")
    assert auth.principal(f"bearer  {A} ") == principal
    for wrong in (None, "", A, f"Basic {A}", f"Bearer {B}", "Bearer "):
        assert auth.principal(wrong) is None
    assert Authenticator().principal(None) is OPEN  # no tokens: development mode


def test_replace_swaps_the_whole_set_or_nothing() -> None:
    auth = Authenticator([token(A, "alice")])
    assert auth.replace([token(B, "bob"), token(A, "alice-again", "admin")]) == 2
    assert auth.principal(f"Bearer {B}").name == "bob"  # type: ignore[union-attr]
    assert auth.principal(f"Bearer {A}").name == "alice-again"  # type: ignore[union-attr]
    with pytest.raises(ConfigError, match="configured twice"):
        auth.replace([token(A, "x"), token(A, "y")])
    with pytest.raises(ConfigError, match="leaves no token"):
        auth.replace([])
    assert auth.principal(f"Bearer {B}").name == "bob"  # type: ignore[union-attr]
    assert auth.enabled
