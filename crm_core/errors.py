"""Domain errors. Callers (bot, API, CLI, workers) translate these into replies or HTTP codes.

    DomainError
    ├── NotFoundError
    │   ├── CustomerNotFoundError
    │   └── StaffNotFoundError
    ├── DuplicateError
    │   └── DuplicateCustomerError      .existing: the customers it would duplicate
    └── ValidationError
        ├── MissingDealFieldsError      .stage, .missing: what a pipeline stage needs first
        ├── UnknownStageError
        └── InvalidDateError            a birthday or contract date that does not exist
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
    def __init__(self, message: str, existing: list | None = None):
        super().__init__(message)
        self.existing = existing or []


class ValidationError(DomainError):
    pass


class MissingDealFieldsError(ValidationError):
    def __init__(self, stage: str, missing: list[str]):
        super().__init__(f"stage {stage!r} needs {', '.join(missing)} first")
        self.stage = stage
        self.missing = missing


class UnknownStageError(ValidationError):
    pass


class InvalidDateError(ValidationError):
    pass
