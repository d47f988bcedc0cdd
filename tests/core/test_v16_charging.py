"""bridge.stations.v16.charging: K01 SetChargingProfile, K10 ClearChargingProfile, K08 GetCompositeSchedule,
K09 GetChargingProfiles (emulated)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.schemas import OfficialSchemas
from bridge.ocppj.errors import OcppVersion
from bridge.ocppj.schema import PayloadKind
from bridge.stations.v16.charging import (
    InstalledProfile,
    ProfileConversion,
    ProfileRefusal,
    charging_profile_down,
    clear_charging_profile,
    clear_charging_profile_response,
    get_charging_profiles,
    get_composite_schedule,
    get_composite_schedule_response,
    reduce_schedules,
    set_charging_profile,
    set_charging_profile_response,
)
from bridge.stations.v16.outcome import Forward, Reply

SCHEMAS = OfficialSchemas()
V16, V201 = OcppVersion.V16, OcppVersion.V201
REQ, RES = PayloadKind.REQUEST, PayloadKind.RESPONSE
NOW = "2026-03-01T12:00:00Z"
TRANSACTIONS = {"tx-1": 41}


def check(version: OcppVersion, action: str, kind: PayloadKind, payload: dict[str, Any]) -> None:
    violation = SCHEMAS.check(version, action, kind, payload)
    assert violation is None, violation


def schedule(periods: list[tuple[int, float]], **fields: Any) -> dict[str, Any]:
    return {
        "id": fields.pop("id", 1),
        "chargingRateUnit": fields.pop("unit", "A"),
        "chargingSchedulePeriod": [{"startPeriod": s, "limit": lim} for s, lim in periods],
        **fields,
    }


def profile(*schedules: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "id": 7,
        "stackLevel": 1,
        "chargingProfilePurpose": fields.pop("purpose", "TxDefaultProfile"),
        "chargingProfileKind": fields.pop("kind", "Absolute"),
        "chargingSchedule": list(schedules) or [schedule([(0, 16)])],
        **fields,
    }


def set_request(charging_profile: dict[str, Any], evse_id: int = 1) -> dict[str, Any]:
    request = {"evseId": evse_id, "chargingProfile": charging_profile}
    check(V201, "SetChargingProfile", REQ, request)
    return request


class TestK01SetChargingProfile:
    def test_fields_renamed_and_purpose_translated(self) -> None:
        request = set_request(
            profile(
                schedule([(0, 32), (3600, 16)], startSchedule="2026-03-01T01:00:00+01:00"),
                purpose="ChargingStationMaxProfile",
                kind="Recurring",
                recurrencyKind="Daily",
                validFrom="2026-03-01T00:00:00Z",
                validTo="2026-04-01T02:00:00+02:00",
            ),
            evse_id=0,
        )
        result = set_charging_profile(request)
        assert isinstance(result, Forward)
        assert result.action == "SetChargingProfile"
        assert result.payload == {
            "connectorId": 0,
            "csChargingProfiles": {
                "chargingProfileId": 7,
                "stackLevel": 1,
                "chargingProfilePurpose": "ChargePointMaxProfile",
                "chargingProfileKind": "Recurring",
                "recurrencyKind": "Daily",
                "validFrom": "2026-03-01T00:00:00Z",
                "validTo": "2026-04-01T00:00:00Z",
                "chargingSchedule": {
                    "chargingRateUnit": "A",
                    "startSchedule": "2026-03-01T00:00:00Z",
                    "chargingSchedulePeriod": [
                        {"startPeriod": 0, "limit": 32},
                        {"startPeriod": 3600, "limit": 16},
                    ],
                },
            },
        }
        check(V16, "SetChargingProfile", REQ, result.payload)

    def test_tx_profile_transaction_id_through_the_lookup(self) -> None:
        request = set_request(profile(purpose="TxProfile", transactionId="tx-1"))
        result = set_charging_profile(request, TRANSACTIONS.get)
        assert isinstance(result, Forward)
        assert result.payload["csChargingProfiles"]["transactionId"] == 41
        check(V16, "SetChargingProfile", REQ, result.payload)

    @pytest.mark.parametrize(
        ("charging_profile", "reason_code"),
        [
            (profile(purpose="TxProfile", transactionId="unknown"), "TxNotFound"),
            (profile(purpose="ChargingStationExternalConstraints"), "InvalidProfile"),
            (profile(schedule([(10, 16)])), "InvalidSchedule"),
            (profile(schedule([(0, 16)]), schedule([(0, 11000)], unit="W")), "InvalidSchedule"),
            (
                profile(
                    schedule([(0, 16)], startSchedule="2026-03-01T00:00:00Z"),
                    schedule([(0, 10)], startSchedule="2026-03-01T01:00:00Z"),
                ),
                "InvalidSchedule",
            ),
        ],
    )
    def test_profiles_1_6_cannot_express_are_rejected_truthfully(
        self, charging_profile: dict[str, Any], reason_code: str
    ) -> None:
        result = set_charging_profile(set_request(charging_profile), TRANSACTIONS.get)
        assert isinstance(result, Reply)
        assert result.response["status"] == "Rejected"
        assert result.response["statusInfo"]["reasonCode"] == reason_code
        check(V201, "SetChargingProfile", RES, result.response)

    def test_phase_to_use_is_refused(self) -> None:
        sched = schedule([(0, 16)])
        sched["chargingSchedulePeriod"][0].update(numberPhases=1, phaseToUse=2)
        result = set_charging_profile(set_request(profile(sched)))
        assert isinstance(result, Reply)
        assert result.response["statusInfo"]["reasonCode"] == "UnsupportedParam"

    def test_schedule_id_and_sales_tariff_are_dropped_and_noted(self) -> None:
        tariff = {"id": 1, "salesTariffEntry": [{"relativeTimeInterval": {"start": 0}}]}
        conversion = charging_profile_down(profile(schedule([(0, 16)], salesTariff=tariff, id=9)))
        assert isinstance(conversion, ProfileConversion)
        assert "salesTariff" not in conversion.profile["chargingSchedule"]
        assert "id" not in conversion.profile["chargingSchedule"]
        assert any("salesTariff" in note for note in conversion.notes)
        assert any("chargingSchedule.id 9" in note for note in conversion.notes)

    def test_limits_rounded_down_to_one_decimal(self) -> None:
        conversion = charging_profile_down(profile(schedule([(0, 16.19), (60, 7.05)])))
        assert isinstance(conversion, ProfileConversion)
        limits = [
            p["limit"] for p in conversion.profile["chargingSchedule"]["chargingSchedulePeriod"]
        ]
        assert limits == [16.1, 7.0]
        assert any("rounded down" in note for note in conversion.notes)

    @pytest.mark.parametrize(
        ("status", "expected", "reason"),
        [("Accepted", "Accepted", None), ("Rejected", "Rejected", None),
         ("NotSupported", "Rejected", "UnsupportedRequest")],
    )  # fmt: skip
    def test_response(self, status: str, expected: str, reason: str | None) -> None:
        response = set_charging_profile_response({"status": status})
        assert response["status"] == expected
        assert response.get("statusInfo", {}).get("reasonCode") == reason
        check(V201, "SetChargingProfile", RES, response)


class TestScheduleReduction:
    def test_three_alternatives_reduce_to_their_pointwise_minimum(self) -> None:
        result = reduce_schedules(
            [
                schedule([(0, 32), (600, 10)], duration=1200, id=1),
                schedule([(0, 20), (300, 25)], duration=900, id=2),
                schedule([(0, 24)], duration=1800, id=3),
            ]
        )
        assert not isinstance(result, ProfileRefusal)
        converted, notes = result
        assert converted["chargingSchedulePeriod"] == [
            {"startPeriod": 0, "limit": 20},
            {"startPeriod": 300, "limit": 24},
            {"startPeriod": 600, "limit": 10},
            {"startPeriod": 1200, "limit": 24},
        ]
        assert converted["duration"] == 1800
        assert any("3 schedules reduced" in note for note in notes)

    def test_a_schedule_without_duration_makes_the_result_endless(self) -> None:
        result = reduce_schedules([schedule([(0, 10)], duration=60), schedule([(0, 16)])])
        assert not isinstance(result, ProfileRefusal)
        converted, _ = result
        assert "duration" not in converted
        assert converted["chargingSchedulePeriod"] == [
            {"startPeriod": 0, "limit": 10},
            {"startPeriod": 60, "limit": 16},
        ]

    def test_different_number_of_phases_at_the_same_time_is_refused(self) -> None:
        first, second = schedule([(0, 16)]), schedule([(0, 16)])
        first["chargingSchedulePeriod"][0]["numberPhases"] = 1
        assert isinstance(reduce_schedules([first, second]), ProfileRefusal)
        second["chargingSchedulePeriod"][0]["numberPhases"] = 1
        result = reduce_schedules([first, second])
        assert not isinstance(result, ProfileRefusal)
        assert result[0]["chargingSchedulePeriod"] == [
            {"startPeriod": 0, "limit": 16, "numberPhases": 1}
        ]

    def test_a_schedule_lasting_no_time_is_refused(self) -> None:
        assert isinstance(reduce_schedules([schedule([(0, 16)], duration=0)]), ProfileRefusal)

    def test_periods_past_the_duration_are_not_kept(self) -> None:
        result = reduce_schedules([schedule([(0, 16), (100, 8)], duration=100)])
        assert not isinstance(result, ProfileRefusal)
        assert result[0]["chargingSchedulePeriod"] == [{"startPeriod": 0, "limit": 16}]

    def test_min_charging_rate_kept_when_all_agree(self) -> None:
        agreed = reduce_schedules(
            [schedule([(0, 16)], minChargingRate=6), schedule([(0, 10)], minChargingRate=6)]
        )
        assert not isinstance(agreed, ProfileRefusal)
        assert agreed[0]["minChargingRate"] == 6
        differing = reduce_schedules(
            [schedule([(0, 16)], minChargingRate=6), schedule([(0, 10)], minChargingRate=8)]
        )
        assert not isinstance(differing, ProfileRefusal)
        assert "minChargingRate" not in differing[0]

    @given(
        st.lists(
            st.tuples(
                st.lists(
                    st.tuples(st.integers(1, 5000), st.integers(0, 640).map(lambda x: x / 10)),
                    max_size=6,
                ),
                st.one_of(st.none(), st.integers(1, 6000)),
                st.integers(0, 640).map(lambda x: x / 10),
            ),
            min_size=1,
            max_size=3,
        )
    )
    def test_reduced_limit_is_never_above_any_active_alternative(
        self, alternatives: list[tuple[list[tuple[int, float]], int | None, float]]
    ) -> None:
        schedules = []
        for later, duration, first_limit in alternatives:
            periods = [(0, first_limit), *sorted(dict(later).items())]
            fields = {"duration": duration} if duration is not None else {}
            schedules.append(schedule(periods, **fields))
        result = reduce_schedules(schedules)
        assert not isinstance(result, ProfileRefusal)
        converted, _ = result
        check(V16, "SetChargingProfile", REQ, {
            "connectorId": 1,
            "csChargingProfiles": {"chargingProfileId": 1, "stackLevel": 0,
                                   "chargingProfilePurpose": "TxDefaultProfile",
                                   "chargingProfileKind": "Relative", "chargingSchedule": converted},
        })  # fmt: skip
        periods = converted["chargingSchedulePeriod"]
        for moment in range(0, 6001, 37):
            active = [
                _limit_at(s["chargingSchedulePeriod"], moment)
                for s in schedules
                if s.get("duration") is None or moment < s["duration"]
            ]
            end = converted.get("duration")
            if not active or (end is not None and moment >= end):
                continue
            assert _limit_at(periods, moment) == min(active)


def _limit_at(periods: list[dict[str, Any]], moment: int) -> float:
    return [p["limit"] for p in sorted(periods, key=lambda p: p["startPeriod"]) if p["startPeriod"] <= moment][-1]  # fmt: skip


class TestK10ClearChargingProfile:
    @pytest.mark.parametrize(
        ("request_201", "payload_16"),
        [
            ({}, {}),
            ({"chargingProfileId": 5}, {"id": 5}),
            (
                {
                    "chargingProfileCriteria": {
                        "evseId": 2,
                        "chargingProfilePurpose": "ChargingStationMaxProfile",
                        "stackLevel": 3,
                    }
                },
                {
                    "connectorId": 2,
                    "chargingProfilePurpose": "ChargePointMaxProfile",
                    "stackLevel": 3,
                },
            ),
        ],
    )
    def test_criteria(self, request_201: dict[str, Any], payload_16: dict[str, Any]) -> None:
        check(V201, "ClearChargingProfile", REQ, request_201)
        result = clear_charging_profile(request_201)
        assert result == Forward("ClearChargingProfile", payload_16)
        check(V16, "ClearChargingProfile", REQ, payload_16)

    def test_external_constraints_are_unknown_on_a_1_6_charger(self) -> None:
        request = {
            "chargingProfileCriteria": {
                "chargingProfilePurpose": "ChargingStationExternalConstraints"
            }
        }
        result = clear_charging_profile(request)
        assert isinstance(result, Reply)
        assert result.response["status"] == "Unknown"
        check(V201, "ClearChargingProfile", RES, result.response)

    @pytest.mark.parametrize("status", ["Accepted", "Unknown"])
    def test_response(self, status: str) -> None:
        response = clear_charging_profile_response({"status": status})
        assert response == {"status": status}
        check(V201, "ClearChargingProfile", RES, response)


class TestK08GetCompositeSchedule:
    REQUEST = {"duration": 3600, "evseId": 1, "chargingRateUnit": "W"}

    def test_request(self) -> None:
        result = get_composite_schedule(self.REQUEST)
        assert result == Forward(
            "GetCompositeSchedule", {"connectorId": 1, "duration": 3600, "chargingRateUnit": "W"}
        )
        check(V16, "GetCompositeSchedule", REQ, result.payload)

    def test_response_fills_what_1_6_leaves_out(self) -> None:
        answer = {
            "status": "Accepted",
            "connectorId": 1,
            "chargingSchedule": {
                "chargingRateUnit": "W",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 11000, "numberPhases": 3}],
            },
        }
        check(V16, "GetCompositeSchedule", RES, answer)
        response = get_composite_schedule_response(answer, request=self.REQUEST, now=NOW)
        assert response == {
            "status": "Accepted",
            "schedule": {
                "evseId": 1,
                "duration": 3600,
                "scheduleStart": NOW,
                "chargingRateUnit": "W",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 11000, "numberPhases": 3}],
            },
        }
        check(V201, "GetCompositeSchedule", RES, response)

    def test_response_keeps_the_charger_start_and_duration(self) -> None:
        answer = {
            "status": "Accepted",
            "connectorId": 1,
            "scheduleStart": "2026-03-01T13:00:00+01:00",
            "chargingSchedule": {
                "duration": 1800,
                "chargingRateUnit": "A",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16}],
            },
        }
        response = get_composite_schedule_response(answer, request=self.REQUEST, now=NOW)
        assert response["schedule"]["scheduleStart"] == "2026-03-01T12:00:00Z"
        assert response["schedule"]["duration"] == 1800
        check(V201, "GetCompositeSchedule", RES, response)

    @pytest.mark.parametrize(
        "answer",
        [
            {"status": "Rejected"},
            {"status": "Accepted"},
            {"status": "Accepted", "chargingSchedule": {"chargingRateUnit": "A", "chargingSchedulePeriod": []}},
        ],
    )  # fmt: skip
    def test_response_without_usable_schedule(self, answer: dict[str, Any]) -> None:
        response = get_composite_schedule_response(answer, request=self.REQUEST, now=NOW)
        assert response == {"status": answer["status"]}
        check(V201, "GetCompositeSchedule", RES, response)


class TestK09GetChargingProfilesEmulated:
    INSTALLED = [
        InstalledProfile(1, profile(purpose="TxDefaultProfile")),
        InstalledProfile(2, {**profile(purpose="TxDefaultProfile"), "id": 8, "stackLevel": 2}),
        InstalledProfile(0, {**profile(purpose="ChargingStationMaxProfile"), "id": 9}),
    ]

    def test_reports_grouped_by_evse(self) -> None:
        request = {
            "requestId": 4,
            "chargingProfile": {"chargingProfilePurpose": "TxDefaultProfile"},
        }
        check(V201, "GetChargingProfiles", REQ, request)
        response, reports = get_charging_profiles(request, self.INSTALLED)
        assert response == {"status": "Accepted"}
        assert [
            (r["evseId"], [p["id"] for p in r["chargingProfile"]], r["tbc"]) for r in reports
        ] == [
            (1, [7], True),
            (2, [8], False),
        ]
        for report in reports:
            check(V201, "ReportChargingProfiles", REQ, report)

    @pytest.mark.parametrize(
        "request_201",
        [
            {"requestId": 1, "evseId": 3, "chargingProfile": {}},
            {"requestId": 1, "chargingProfile": {"chargingProfileId": [99]}},
            {"requestId": 1, "chargingProfile": {"chargingLimitSource": ["EMS"]}},
        ],
    )
    def test_no_profiles(self, request_201: dict[str, Any]) -> None:
        check(V201, "GetChargingProfiles", REQ, request_201)
        assert get_charging_profiles(request_201, self.INSTALLED) == ({"status": "NoProfiles"}, [])


def test_conversion_does_not_modify_its_input() -> None:
    original = profile(
        schedule([(0, 16.25)]), schedule([(0, 10)]), purpose="TxProfile", transactionId="tx-1"
    )
    kept = copy.deepcopy(original)
    charging_profile_down(original, TRANSACTIONS.get)
    assert original == kept
