"""IEC 60870-5-104 chargers as OCPP 2.0.1 stations: the mapping language and its compiled form.

Layers, each a module of its own:
- `vocabulary`: type ids, OCPP 2.0.1 enumerations and units, IOA parsing;
- `conditions`, `points`, `model`: the pydantic models of the YAML language (`MappingTable`);
- `problems`, `checks`: `validate_table(data)`, every problem located by its path in the data;
- `overrides`: `merge_tables(base, override)`, the semantics of `extends`;
- `addresses`, `rules`, `logic`, `compiled`: `compile_table(table, connectors)`, the frozen lookups a
  station core uses;
- `frames`, `frame_checks`, `registration`, `private`: a vendor's registration frame and private ASDUs
  (the language, its cross-checks, and their pure codecs).

Nothing here reads files: `adapters.mapping_files` loads YAML, resolves `extends` and maps problem paths
to file, line and column.
"""

from bridge.stations.iec104.checks import validate_table
from bridge.stations.iec104.compiled import CompiledTable, asdu_format, compile_table
from bridge.stations.iec104.logic import ConnectorLogic, TransactionLogic
from bridge.stations.iec104.model import MappingTable
from bridge.stations.iec104.overrides import merge_tables
from bridge.stations.iec104.problems import TableError, TableProblem
from bridge.stations.iec104.rules import (
    CommandRule,
    CommandTarget,
    CounterRule,
    EnumRule,
    MeasurementRule,
    PointRule,
    SetpointRule,
    StatusRule,
)
from bridge.stations.iec104.vocabulary import TypeId, format_ioa, parse_ioa

__all__ = [
    "CommandRule",
    "CommandTarget",
    "CompiledTable",
    "ConnectorLogic",
    "CounterRule",
    "EnumRule",
    "MappingTable",
    "MeasurementRule",
    "PointRule",
    "SetpointRule",
    "StatusRule",
    "TableError",
    "TableProblem",
    "TransactionLogic",
    "TypeId",
    "asdu_format",
    "compile_table",
    "format_ioa",
    "merge_tables",
    "parse_ioa",
    "validate_table",
]
