"""Global defaults set with `minisand config set KEY VALUE` (MINISAND_HOME/config.json), like minikube's
config. This module only stores them: which keys exist and how each value is checked (the same parser as the
start flag of the same name) is the option table's job (minisand/cluster/options.py), done before anything here
is called, so a refused value leaves the file as it was."""

from __future__ import annotations

import json

from minisand.errors import ExitCode, MinisandError
from minisand.fsutil import atomic_write_text
from minisand.paths import Home


class Settings:
    def __init__(self, home: Home) -> None:
        self.path = home.settings

    def load(self) -> dict[str, str | list[str]]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            what = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8"
            raise MinisandError(f"{self.path} is not valid JSON: {what}",
                                hint=f"fix or remove {self.path}", code=ExitCode.PROFILE_CORRUPT) from None
        if not isinstance(data, dict):
            raise MinisandError(f"{self.path} is not a JSON object", hint=f"remove {self.path}",
                                code=ExitCode.PROFILE_CORRUPT)
        return data

    def _save(self, data: dict[str, str | list[str]]) -> None:
        atomic_write_text(self.path, json.dumps(data, indent=2, sort_keys=True) + "\n", mode=0o600)

    def set(self, name: str, value: str | list[str]) -> None:
        """Stores a value that was already checked."""
        data = self.load()
        data[name] = value
        self._save(data)

    def get(self, name: str) -> str | list[str] | None:
        return self.load().get(name)

    def unset(self, name: str) -> None:
        data = self.load()
        if name in data:
            del data[name]
            self._save(data)
