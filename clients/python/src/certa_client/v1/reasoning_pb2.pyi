import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Allocation(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ALLOCATION_UNSPECIFIED: _ClassVar[Allocation]
    ALLOCATION_UNIFORM: _ClassVar[Allocation]
    ALLOCATION_BANDIT: _ClassVar[Allocation]

class StopReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STOP_REASON_UNSPECIFIED: _ClassVar[StopReason]
    STOP_REASON_CERTAIN: _ClassVar[StopReason]
    STOP_REASON_MODEL_FINISHED: _ClassVar[StopReason]
    STOP_REASON_BUDGET: _ClassVar[StopReason]
    STOP_REASON_CANCELLED: _ClassVar[StopReason]
    STOP_REASON_VOTED: _ClassVar[StopReason]
    STOP_REASON_ERROR: _ClassVar[StopReason]

class SolveStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SOLVE_STATUS_UNSPECIFIED: _ClassVar[SolveStatus]
    SOLVE_STATUS_RUNNING: _ClassVar[SolveStatus]
    SOLVE_STATUS_SUCCEEDED: _ClassVar[SolveStatus]
    SOLVE_STATUS_FAILED: _ClassVar[SolveStatus]
    SOLVE_STATUS_CANCELLED: _ClassVar[SolveStatus]
ALLOCATION_UNSPECIFIED: Allocation
ALLOCATION_UNIFORM: Allocation
ALLOCATION_BANDIT: Allocation
STOP_REASON_UNSPECIFIED: StopReason
STOP_REASON_CERTAIN: StopReason
STOP_REASON_MODEL_FINISHED: StopReason
STOP_REASON_BUDGET: StopReason
STOP_REASON_CANCELLED: StopReason
STOP_REASON_VOTED: StopReason
STOP_REASON_ERROR: StopReason
SOLVE_STATUS_UNSPECIFIED: SolveStatus
SOLVE_STATUS_RUNNING: SolveStatus
SOLVE_STATUS_SUCCEEDED: SolveStatus
SOLVE_STATUS_FAILED: SolveStatus
SOLVE_STATUS_CANCELLED: SolveStatus

class SolveRequest(_message.Message):
    __slots__ = ("question", "raw_prompt", "strategy", "sampling", "token_budget", "deadline", "backend", "model", "request_id")
    QUESTION_FIELD_NUMBER: _ClassVar[int]
    RAW_PROMPT_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    TOKEN_BUDGET_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    question: str
    raw_prompt: str
    strategy: Strategy
    sampling: SamplingParams
    token_budget: int
    deadline: _duration_pb2.Duration
    backend: str
    model: str
    request_id: str
    def __init__(self, question: _Optional[str] = ..., raw_prompt: _Optional[str] = ..., strategy: _Optional[_Union[Strategy, _Mapping]] = ..., sampling: _Optional[_Union[SamplingParams, _Mapping]] = ..., token_budget: _Optional[int] = ..., deadline: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., backend: _Optional[str] = ..., model: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class Strategy(_message.Message):
    __slots__ = ("plain", "dynasor_cot", "majority_vote", "self_consistency")
    PLAIN_FIELD_NUMBER: _ClassVar[int]
    DYNASOR_COT_FIELD_NUMBER: _ClassVar[int]
    MAJORITY_VOTE_FIELD_NUMBER: _ClassVar[int]
    SELF_CONSISTENCY_FIELD_NUMBER: _ClassVar[int]
    plain: PlainCot
    dynasor_cot: DynasorCot
    majority_vote: MajorityVote
    self_consistency: SelfConsistency
    def __init__(self, plain: _Optional[_Union[PlainCot, _Mapping]] = ..., dynasor_cot: _Optional[_Union[DynasorCot, _Mapping]] = ..., majority_vote: _Optional[_Union[MajorityVote, _Mapping]] = ..., self_consistency: _Optional[_Union[SelfConsistency, _Mapping]] = ...) -> None: ...

class PlainCot(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DynasorCot(_message.Message):
    __slots__ = ("preset", "chunk_tokens", "certainty_threshold", "probe_tokens", "window", "consistency", "disable_early_exit", "require_settled", "risk", "profile")
    class Preset(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        PRESET_UNSPECIFIED: _ClassVar[DynasorCot.Preset]
        PRESET_MILD: _ClassVar[DynasorCot.Preset]
        PRESET_LOW: _ClassVar[DynasorCot.Preset]
        PRESET_MID: _ClassVar[DynasorCot.Preset]
        PRESET_HIGH: _ClassVar[DynasorCot.Preset]
        PRESET_CRAZY: _ClassVar[DynasorCot.Preset]
        PRESET_AUTO: _ClassVar[DynasorCot.Preset]
    PRESET_UNSPECIFIED: DynasorCot.Preset
    PRESET_MILD: DynasorCot.Preset
    PRESET_LOW: DynasorCot.Preset
    PRESET_MID: DynasorCot.Preset
    PRESET_HIGH: DynasorCot.Preset
    PRESET_CRAZY: DynasorCot.Preset
    PRESET_AUTO: DynasorCot.Preset
    PRESET_FIELD_NUMBER: _ClassVar[int]
    CHUNK_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CERTAINTY_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    PROBE_TOKENS_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_FIELD_NUMBER: _ClassVar[int]
    DISABLE_EARLY_EXIT_FIELD_NUMBER: _ClassVar[int]
    REQUIRE_SETTLED_FIELD_NUMBER: _ClassVar[int]
    RISK_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    preset: DynasorCot.Preset
    chunk_tokens: int
    certainty_threshold: int
    probe_tokens: int
    window: int
    consistency: float
    disable_early_exit: bool
    require_settled: bool
    risk: float
    profile: str
    def __init__(self, preset: _Optional[_Union[DynasorCot.Preset, str]] = ..., chunk_tokens: _Optional[int] = ..., certainty_threshold: _Optional[int] = ..., probe_tokens: _Optional[int] = ..., window: _Optional[int] = ..., consistency: _Optional[float] = ..., disable_early_exit: bool = ..., require_settled: bool = ..., risk: _Optional[float] = ..., profile: _Optional[str] = ...) -> None: ...

class MajorityVote(_message.Message):
    __slots__ = ("n", "plain", "dynasor_cot")
    N_FIELD_NUMBER: _ClassVar[int]
    PLAIN_FIELD_NUMBER: _ClassVar[int]
    DYNASOR_COT_FIELD_NUMBER: _ClassVar[int]
    n: int
    plain: PlainCot
    dynasor_cot: DynasorCot
    def __init__(self, n: _Optional[int] = ..., plain: _Optional[_Union[PlainCot, _Mapping]] = ..., dynasor_cot: _Optional[_Union[DynasorCot, _Mapping]] = ...) -> None: ...

class SelfConsistency(_message.Message):
    __slots__ = ("plain", "dynasor_cot", "stop_rule", "wave_size", "max_samples", "refinement", "pool")
    PLAIN_FIELD_NUMBER: _ClassVar[int]
    DYNASOR_COT_FIELD_NUMBER: _ClassVar[int]
    STOP_RULE_FIELD_NUMBER: _ClassVar[int]
    WAVE_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    REFINEMENT_FIELD_NUMBER: _ClassVar[int]
    POOL_FIELD_NUMBER: _ClassVar[int]
    plain: PlainCot
    dynasor_cot: DynasorCot
    stop_rule: StopRule
    wave_size: int
    max_samples: int
    refinement: Refinement
    pool: str
    def __init__(self, plain: _Optional[_Union[PlainCot, _Mapping]] = ..., dynasor_cot: _Optional[_Union[DynasorCot, _Mapping]] = ..., stop_rule: _Optional[_Union[StopRule, _Mapping]] = ..., wave_size: _Optional[int] = ..., max_samples: _Optional[int] = ..., refinement: _Optional[_Union[Refinement, _Mapping]] = ..., pool: _Optional[str] = ...) -> None: ...

class Refinement(_message.Message):
    __slots__ = ("attempts", "attempt_chars")
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_CHARS_FIELD_NUMBER: _ClassVar[int]
    attempts: int
    attempt_chars: int
    def __init__(self, attempts: _Optional[int] = ..., attempt_chars: _Optional[int] = ...) -> None: ...

class StopRule(_message.Message):
    __slots__ = ("fixed", "certaindex", "esc", "beta")
    FIXED_FIELD_NUMBER: _ClassVar[int]
    CERTAINDEX_FIELD_NUMBER: _ClassVar[int]
    ESC_FIELD_NUMBER: _ClassVar[int]
    BETA_FIELD_NUMBER: _ClassVar[int]
    fixed: FixedCount
    certaindex: CertaindexRule
    esc: EscRule
    beta: BetaRule
    def __init__(self, fixed: _Optional[_Union[FixedCount, _Mapping]] = ..., certaindex: _Optional[_Union[CertaindexRule, _Mapping]] = ..., esc: _Optional[_Union[EscRule, _Mapping]] = ..., beta: _Optional[_Union[BetaRule, _Mapping]] = ...) -> None: ...

class FixedCount(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CertaindexRule(_message.Message):
    __slots__ = ("threshold", "min_samples")
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    MIN_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    threshold: float
    min_samples: int
    def __init__(self, threshold: _Optional[float] = ..., min_samples: _Optional[int] = ...) -> None: ...

class EscRule(_message.Message):
    __slots__ = ("window",)
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    window: int
    def __init__(self, window: _Optional[int] = ...) -> None: ...

class BetaRule(_message.Message):
    __slots__ = ("threshold",)
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    threshold: float
    def __init__(self, threshold: _Optional[float] = ...) -> None: ...

class SamplingParams(_message.Message):
    __slots__ = ("temperature", "top_p", "top_k", "seed", "repetition_penalty", "presence_penalty", "frequency_penalty")
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TOP_P_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    REPETITION_PENALTY_FIELD_NUMBER: _ClassVar[int]
    PRESENCE_PENALTY_FIELD_NUMBER: _ClassVar[int]
    FREQUENCY_PENALTY_FIELD_NUMBER: _ClassVar[int]
    temperature: float
    top_p: float
    top_k: int
    seed: int
    repetition_penalty: float
    presence_penalty: float
    frequency_penalty: float
    def __init__(self, temperature: _Optional[float] = ..., top_p: _Optional[float] = ..., top_k: _Optional[int] = ..., seed: _Optional[int] = ..., repetition_penalty: _Optional[float] = ..., presence_penalty: _Optional[float] = ..., frequency_penalty: _Optional[float] = ...) -> None: ...

class SolveBatchRequest(_message.Message):
    __slots__ = ("questions", "plain", "dynasor_cot", "sampling", "token_budget", "budget", "per_question_cap", "warmup", "exploration", "stop_rule", "refinement", "allocation", "max_in_flight", "deadline", "backend", "model", "request_id")
    QUESTIONS_FIELD_NUMBER: _ClassVar[int]
    PLAIN_FIELD_NUMBER: _ClassVar[int]
    DYNASOR_COT_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    TOKEN_BUDGET_FIELD_NUMBER: _ClassVar[int]
    BUDGET_FIELD_NUMBER: _ClassVar[int]
    PER_QUESTION_CAP_FIELD_NUMBER: _ClassVar[int]
    WARMUP_FIELD_NUMBER: _ClassVar[int]
    EXPLORATION_FIELD_NUMBER: _ClassVar[int]
    STOP_RULE_FIELD_NUMBER: _ClassVar[int]
    REFINEMENT_FIELD_NUMBER: _ClassVar[int]
    ALLOCATION_FIELD_NUMBER: _ClassVar[int]
    MAX_IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    questions: _containers.RepeatedCompositeFieldContainer[BatchQuestion]
    plain: PlainCot
    dynasor_cot: DynasorCot
    sampling: SamplingParams
    token_budget: int
    budget: BatchBudget
    per_question_cap: int
    warmup: int
    exploration: float
    stop_rule: StopRule
    refinement: Refinement
    allocation: Allocation
    max_in_flight: int
    deadline: _duration_pb2.Duration
    backend: str
    model: str
    request_id: str
    def __init__(self, questions: _Optional[_Iterable[_Union[BatchQuestion, _Mapping]]] = ..., plain: _Optional[_Union[PlainCot, _Mapping]] = ..., dynasor_cot: _Optional[_Union[DynasorCot, _Mapping]] = ..., sampling: _Optional[_Union[SamplingParams, _Mapping]] = ..., token_budget: _Optional[int] = ..., budget: _Optional[_Union[BatchBudget, _Mapping]] = ..., per_question_cap: _Optional[int] = ..., warmup: _Optional[int] = ..., exploration: _Optional[float] = ..., stop_rule: _Optional[_Union[StopRule, _Mapping]] = ..., refinement: _Optional[_Union[Refinement, _Mapping]] = ..., allocation: _Optional[_Union[Allocation, str]] = ..., max_in_flight: _Optional[int] = ..., deadline: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., backend: _Optional[str] = ..., model: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class BatchQuestion(_message.Message):
    __slots__ = ("id", "question")
    ID_FIELD_NUMBER: _ClassVar[int]
    QUESTION_FIELD_NUMBER: _ClassVar[int]
    id: str
    question: str
    def __init__(self, id: _Optional[str] = ..., question: _Optional[str] = ...) -> None: ...

class BatchBudget(_message.Message):
    __slots__ = ("samples", "tokens")
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    samples: int
    tokens: int
    def __init__(self, samples: _Optional[int] = ..., tokens: _Optional[int] = ...) -> None: ...

class QuestionResult(_message.Message):
    __slots__ = ("id", "result", "retire_reason", "error")
    ID_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    RETIRE_REASON_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    id: str
    result: SolveResult
    retire_reason: str
    error: QuestionError
    def __init__(self, id: _Optional[str] = ..., result: _Optional[_Union[SolveResult, _Mapping]] = ..., retire_reason: _Optional[str] = ..., error: _Optional[_Union[QuestionError, _Mapping]] = ...) -> None: ...

class QuestionError(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class BatchSummary(_message.Message):
    __slots__ = ("questions", "failed_questions", "samples_spent", "tokens_spent", "budget")
    QUESTIONS_FIELD_NUMBER: _ClassVar[int]
    FAILED_QUESTIONS_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_SPENT_FIELD_NUMBER: _ClassVar[int]
    TOKENS_SPENT_FIELD_NUMBER: _ClassVar[int]
    BUDGET_FIELD_NUMBER: _ClassVar[int]
    questions: int
    failed_questions: int
    samples_spent: int
    tokens_spent: int
    budget: BatchBudget
    def __init__(self, questions: _Optional[int] = ..., failed_questions: _Optional[int] = ..., samples_spent: _Optional[int] = ..., tokens_spent: _Optional[int] = ..., budget: _Optional[_Union[BatchBudget, _Mapping]] = ...) -> None: ...

class GetSolveRequest(_message.Message):
    __slots__ = ("request_id",)
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    def __init__(self, request_id: _Optional[str] = ...) -> None: ...

class CancelSolveRequest(_message.Message):
    __slots__ = ("request_id",)
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    def __init__(self, request_id: _Optional[str] = ...) -> None: ...

class CancelSolveResponse(_message.Message):
    __slots__ = ("request_id", "cancelled")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    cancelled: bool
    def __init__(self, request_id: _Optional[str] = ..., cancelled: bool = ...) -> None: ...

class Probe(_message.Message):
    __slots__ = ("sample_index", "position_tokens", "answer", "confident", "tokens", "confidence", "trigger")
    SAMPLE_INDEX_FIELD_NUMBER: _ClassVar[int]
    POSITION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    CONFIDENT_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_FIELD_NUMBER: _ClassVar[int]
    sample_index: int
    position_tokens: int
    answer: str
    confident: bool
    tokens: int
    confidence: float
    trigger: str
    def __init__(self, sample_index: _Optional[int] = ..., position_tokens: _Optional[int] = ..., answer: _Optional[str] = ..., confident: bool = ..., tokens: _Optional[int] = ..., confidence: _Optional[float] = ..., trigger: _Optional[str] = ...) -> None: ...

class TokenUsage(_message.Message):
    __slots__ = ("prompt_tokens", "path_tokens", "probe_tokens", "cached_prompt_tokens")
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    PATH_TOKENS_FIELD_NUMBER: _ClassVar[int]
    PROBE_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHED_PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    prompt_tokens: int
    path_tokens: int
    probe_tokens: int
    cached_prompt_tokens: int
    def __init__(self, prompt_tokens: _Optional[int] = ..., path_tokens: _Optional[int] = ..., probe_tokens: _Optional[int] = ..., cached_prompt_tokens: _Optional[int] = ...) -> None: ...

class Sample(_message.Message):
    __slots__ = ("index", "answer", "stop_reason", "path_tokens", "probe_tokens")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    STOP_REASON_FIELD_NUMBER: _ClassVar[int]
    PATH_TOKENS_FIELD_NUMBER: _ClassVar[int]
    PROBE_TOKENS_FIELD_NUMBER: _ClassVar[int]
    index: int
    answer: str
    stop_reason: StopReason
    path_tokens: int
    probe_tokens: int
    def __init__(self, index: _Optional[int] = ..., answer: _Optional[str] = ..., stop_reason: _Optional[_Union[StopReason, str]] = ..., path_tokens: _Optional[int] = ..., probe_tokens: _Optional[int] = ...) -> None: ...

class AnswerClass(_message.Message):
    __slots__ = ("answer", "count")
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    answer: str
    count: int
    def __init__(self, answer: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class SolveResult(_message.Message):
    __slots__ = ("answer", "stop_reason", "text", "usage", "probes", "wall_time", "samples", "answer_classes", "tokens_saved_vs_budget", "rounds", "stop_detail", "batch")
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    STOP_REASON_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    PROBES_FIELD_NUMBER: _ClassVar[int]
    WALL_TIME_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    ANSWER_CLASSES_FIELD_NUMBER: _ClassVar[int]
    TOKENS_SAVED_VS_BUDGET_FIELD_NUMBER: _ClassVar[int]
    ROUNDS_FIELD_NUMBER: _ClassVar[int]
    STOP_DETAIL_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    answer: str
    stop_reason: StopReason
    text: str
    usage: TokenUsage
    probes: _containers.RepeatedCompositeFieldContainer[Probe]
    wall_time: _duration_pb2.Duration
    samples: _containers.RepeatedCompositeFieldContainer[Sample]
    answer_classes: _containers.RepeatedCompositeFieldContainer[AnswerClass]
    tokens_saved_vs_budget: int
    rounds: _containers.RepeatedCompositeFieldContainer[Round]
    stop_detail: str
    batch: BatchSummary
    def __init__(self, answer: _Optional[str] = ..., stop_reason: _Optional[_Union[StopReason, str]] = ..., text: _Optional[str] = ..., usage: _Optional[_Union[TokenUsage, _Mapping]] = ..., probes: _Optional[_Iterable[_Union[Probe, _Mapping]]] = ..., wall_time: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., samples: _Optional[_Iterable[_Union[Sample, _Mapping]]] = ..., answer_classes: _Optional[_Iterable[_Union[AnswerClass, _Mapping]]] = ..., tokens_saved_vs_budget: _Optional[int] = ..., rounds: _Optional[_Iterable[_Union[Round, _Mapping]]] = ..., stop_detail: _Optional[str] = ..., batch: _Optional[_Union[BatchSummary, _Mapping]] = ...) -> None: ...

class Round(_message.Message):
    __slots__ = ("samples", "drawn", "certaindex", "statistic", "stop", "reason")
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    DRAWN_FIELD_NUMBER: _ClassVar[int]
    CERTAINDEX_FIELD_NUMBER: _ClassVar[int]
    STATISTIC_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    samples: _containers.RepeatedScalarFieldContainer[int]
    drawn: int
    certaindex: float
    statistic: float
    stop: bool
    reason: str
    def __init__(self, samples: _Optional[_Iterable[int]] = ..., drawn: _Optional[int] = ..., certaindex: _Optional[float] = ..., statistic: _Optional[float] = ..., stop: bool = ..., reason: _Optional[str] = ...) -> None: ...

class SolveResponse(_message.Message):
    __slots__ = ("request_id", "status", "result", "error", "created_at", "strategy", "attempt")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    status: SolveStatus
    result: SolveResult
    error: str
    created_at: _timestamp_pb2.Timestamp
    strategy: str
    attempt: int
    def __init__(self, request_id: _Optional[str] = ..., status: _Optional[_Union[SolveStatus, str]] = ..., result: _Optional[_Union[SolveResult, _Mapping]] = ..., error: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., strategy: _Optional[str] = ..., attempt: _Optional[int] = ...) -> None: ...

class SolveEvent(_message.Message):
    __slots__ = ("request_id", "started", "text", "probe", "decision", "result", "resumed", "question")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    PROBE_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    RESUMED_FIELD_NUMBER: _ClassVar[int]
    QUESTION_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    started: Started
    text: TextDelta
    probe: Probe
    decision: Decision
    result: SolveResult
    resumed: Resumed
    question: QuestionResult
    def __init__(self, request_id: _Optional[str] = ..., started: _Optional[_Union[Started, _Mapping]] = ..., text: _Optional[_Union[TextDelta, _Mapping]] = ..., probe: _Optional[_Union[Probe, _Mapping]] = ..., decision: _Optional[_Union[Decision, _Mapping]] = ..., result: _Optional[_Union[SolveResult, _Mapping]] = ..., resumed: _Optional[_Union[Resumed, _Mapping]] = ..., question: _Optional[_Union[QuestionResult, _Mapping]] = ...) -> None: ...

class Resumed(_message.Message):
    __slots__ = ("attempt", "paths")
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    PATHS_FIELD_NUMBER: _ClassVar[int]
    attempt: int
    paths: _containers.RepeatedCompositeFieldContainer[PathProgress]
    def __init__(self, attempt: _Optional[int] = ..., paths: _Optional[_Iterable[_Union[PathProgress, _Mapping]]] = ...) -> None: ...

class PathProgress(_message.Message):
    __slots__ = ("sample_index", "text_chars", "path_tokens")
    SAMPLE_INDEX_FIELD_NUMBER: _ClassVar[int]
    TEXT_CHARS_FIELD_NUMBER: _ClassVar[int]
    PATH_TOKENS_FIELD_NUMBER: _ClassVar[int]
    sample_index: int
    text_chars: int
    path_tokens: int
    def __init__(self, sample_index: _Optional[int] = ..., text_chars: _Optional[int] = ..., path_tokens: _Optional[int] = ...) -> None: ...

class Started(_message.Message):
    __slots__ = ("strategy", "backend", "model")
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    strategy: str
    backend: str
    model: str
    def __init__(self, strategy: _Optional[str] = ..., backend: _Optional[str] = ..., model: _Optional[str] = ...) -> None: ...

class TextDelta(_message.Message):
    __slots__ = ("sample_index", "text", "path_tokens")
    SAMPLE_INDEX_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    PATH_TOKENS_FIELD_NUMBER: _ClassVar[int]
    sample_index: int
    text: str
    path_tokens: int
    def __init__(self, sample_index: _Optional[int] = ..., text: _Optional[str] = ..., path_tokens: _Optional[int] = ...) -> None: ...

class Decision(_message.Message):
    __slots__ = ("sample_index", "stop_reason", "answer", "detail")
    SAMPLE_INDEX_FIELD_NUMBER: _ClassVar[int]
    STOP_REASON_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    sample_index: int
    stop_reason: StopReason
    answer: str
    detail: str
    def __init__(self, sample_index: _Optional[int] = ..., stop_reason: _Optional[_Union[StopReason, str]] = ..., answer: _Optional[str] = ..., detail: _Optional[str] = ...) -> None: ...
