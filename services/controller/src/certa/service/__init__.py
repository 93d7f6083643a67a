"""The application service, by job: the facade (`requests`), admission (with the model catalogue, `models`),
planning (spec → strategy), the runs of this replica (`runs`), the read side (`reads`) and the sweep; it speaks core
values only."""

from certa.service.requests import SolveService
from certa.service.views import Finished, FollowedEvent, RequestView

__all__ = ["Finished", "FollowedEvent", "RequestView", "SolveService"]
