"""What every cluster operation gets: MINISAND_HOME, the profile name, the store."""

from __future__ import annotations

from dataclasses import dataclass

from minisand.config.settings import Settings
from minisand.config.store import ProfileStore
from minisand.logsetup import attach_profile_log
from minisand.paths import Home


@dataclass(frozen=True)
class Context:
    home: Home
    profile: str

    @property
    def store(self) -> ProfileStore:
        return ProfileStore(self.home)

    @property
    def settings(self) -> Settings:
        return Settings(self.home)

    def attach_log(self) -> None:
        self.home.ensure(self.home.logs)
        attach_profile_log(self.home.profile_log(self.profile))
