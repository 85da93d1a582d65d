"""The review queue over REST: list it, claim the next part, record a person's verdict on a part,
and what the reviews say about the deployed thresholds (escape and false-reject rates)."""
# No `from __future__ import annotations`: FastAPI reads the endpoint annotations at run time.

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Query, Response
from pydantic import BaseModel, Field

from lineguard.store.reviews import MAX_CLASS_CHARS, MAX_NOTE_CHARS, QueuedPart, Review, ReviewError


class ReviewIn(BaseModel):
    result: Literal["good", "defect"]
    defect_class: str = Field("", max_length=MAX_CLASS_CHARS, description="what the defect is (defect only)")
    note: str = Field("", max_length=MAX_NOTE_CHARS)


class ReviewQueueOut(BaseModel):
    waiting: int  # parts in the queue now
    parts: list[QueuedPart]  # this page, oldest first


class Share(BaseModel):
    k: int
    n: int
    estimate: float | None
    low: float | None  # exact (Clopper-Pearson) 95 % interval
    high: float | None


class StratumOut(BaseModel):
    verdict: str
    decided: int  # parts the station decided so in the period
    reviewed: int  # of them, drawn for review and reviewed
    defect: int
    defect_share: Share


class RateOut(BaseModel):
    estimate: float | None
    low: float | None  # 95 % interval
    high: float | None
    why_not: str


class ReviewStatisticsOut(BaseModel):
    since: datetime | None
    until: datetime | None
    strata: list[StratumOut]
    escape_rate: RateOut  # share of the defective parts the station passed as OK
    false_reject_rate: RateOut  # share of the good parts it failed as NG
    good_sent_to_review: RateOut  # share of the good parts it sent to REVIEW


def add_review_routes(app: FastAPI, station: Any, authorised, reviewer) -> None:
    """``authorised``: the dependency naming whoever called; ``reviewer``: the same, refusing
    roles that may not review."""
    auth = [Depends(authorised)]
    Reviewer = Annotated[Any, Depends(reviewer)]

    @app.get("/review/queue", response_model=ReviewQueueOut, dependencies=auth)
    def review_queue(
        limit: Annotated[int, Query(ge=1, le=1000)] = 100, offset: Annotated[int, Query(ge=0)] = 0
    ) -> ReviewQueueOut:
        """Parts waiting for review (every REVIEW part, a sample of OK and NG), oldest first."""
        store = station.store
        return ReviewQueueOut(
            waiting=store.review_queue_length(station.name),
            parts=store.review_queue(station.name, limit, offset),
        )

    @app.post("/review/claim", response_model=QueuedPart, responses={204: {"description": "queue empty"}})
    def claim(user: Reviewer) -> Any:
        """Take the next part to review (or the one you hold): others skip it for the station's
        ``review.claim_minutes``. 204 when nothing waits."""
        part = station.store.claim_review(station.name, user.name, station.config.review.claim_minutes)
        return Response(status_code=204) if part is None else part

    @app.post("/review/parts/{uid}", response_model=Review)
    def submit(uid: str, review: ReviewIn, user: Reviewer) -> Review:
        """Your verdict on a recorded part: good, or defect (with its class and a note). Kept beside
        the station's verdict, which it never changes; 409 while another reviewer holds the part."""
        try:
            done = station.store.add_review(
                station.name,
                uid,
                user.name,
                review.result,
                review.defect_class,
                review.note,
            )
        except ReviewError as exc:
            raise HTTPException(404 if exc.kind == "unknown" else 409, str(exc)) from None
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        station.audit(user.name, "review", f"part {uid}", None, review.model_dump())
        return done

    @app.get("/review/parts/{uid}", response_model=list[Review], dependencies=auth)
    def reviews_of(uid: str) -> list[Review]:
        """Every review of a part, oldest first."""
        if station.store.part(station.name, uid) is None:
            raise HTTPException(404, f"no part {uid!r} recorded at station {station.name!r}")
        return station.store.reviews_of(station.name, uid)

    @app.get("/review/statistics", response_model=ReviewStatisticsOut, dependencies=auth)
    def review_statistics(
        since: datetime | None = None, until: datetime | None = None
    ) -> ReviewStatisticsOut:
        """Escape and false-reject rates of the deployed thresholds over the parts decided in
        [since, until), from the reviews of the sampled parts, with 95 % intervals."""
        from lineguard.spc.review import review_rates
        from lineguard.store.summary import Period

        try:  # the one check of a period: both ends with a time zone, since before until
            Period(station.name, since, until)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        decided, reviewed = station.store.review_counts(station.name, since, until)
        rates = review_rates(decided, reviewed)
        return ReviewStatisticsOut.model_validate({"since": since, "until": until, **asdict(rates)})
