"""Domain errors. Callers (bot, API, CLI, workers) translate these into replies or HTTP codes.

    DomainError
    ├── NotFoundError
    │   ├── CustomerNotFoundError
    │   └── StaffNotFoundError
    ├── DuplicateError
    │   └── DuplicateCustomerError
    └── ValidationError
"""


class DomainError(Exception):
    """Base of every business refusal; its message is safe to show to a user."""


class NotFoundError(DomainError):
    pass


class CustomerNotFoundError(NotFoundError):
    pass


class StaffNotFoundError(NotFoundError):
    pass


class DuplicateError(DomainError):
    pass


class DuplicateCustomerError(DuplicateError):
    pass


class ValidationError(DomainError):
    pass
