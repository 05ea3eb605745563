"""Microsoft Cabinet (CAB) writer and reader.

Hand-written because neither Linux option fits: ``cabarchive`` keeps the whole archive in RAM
and silently corrupts cabinets beyond ~2 GiB (block count capped at 0xFFFF), and ``gcab`` has no
SOURCE_DATE_EPOCH, cannot reserve the Authenticode header area and gives no control over folder
splits. The reader treats every input as hostile (vendor CABs). Layout: [MS-CAB], Microsoft's Cabinet
File Format specification (CFHEADER, CFFOLDER, CFFILE, CFDATA). Signature placement and the CAB
digest are those of osslsigncode's CAB support: tests/formats/test_cab.py checks that our reserve
insertion plus appended signature equal osslsigncode's output byte for byte, and that its digest
equals :func:`cab_hash`.

The reader decodes stored, MSZIP (zlib), LZX and Quantum (libmspack, see :mod:`.mspack`) folders;
the writer writes stored and MSZIP ones.

The package: :mod:`.structs` (layout, checksum, names, data types), :mod:`.writer`,
:mod:`.reader`, :mod:`.mspack` and :mod:`.authenticode` (signature reserve, digest, content signature); this
module re-exports their public API.
"""

from __future__ import annotations

from .authenticode import append_signature, cab_hash, content_signature, insert_signature_reserve
from .reader import CabReader
from .structs import (
    ATTR_NAME_IS_UTF,
    BLOCK_SIZE,
    CFDATA,
    CFDATA_SIZE,
    CFFILE,
    CFFILE_FIXED_SIZE,
    CFFOLDER,
    CFFOLDER_SIZE,
    CFHEADER,
    CFHEADER_FIXED_SIZE,
    COMP_LZX,
    COMP_MSZIP,
    COMP_NONE,
    COMP_QUANTUM,
    DEFAULT_DOS_DATETIME,
    DEFAULT_READ_MAX,
    FLAG_NEXT_CABINET,
    FLAG_PREV_CABINET,
    FLAG_RESERVE_PRESENT,
    MAX_BLOCKS_PER_FOLDER,
    MAX_CABINET_SIZE,
    MAX_FILE_SIZE,
    MAX_FILES,
    MAX_FOLDERS,
    MAX_HEADER_RESERVE,
    MAX_MSZIP_CBDATA,
    MAX_NAME_BYTES,
    MAX_READ_NAME_BYTES,
    SIG_INSERT_SIZE,
    SIG_LEN_POS,
    SIG_OFFSET_POS,
    SIG_RESERVE,
    SIG_RESERVE_MAGIC,
    SIG_RESERVE_SIZE,
    CabEntry,
    CabInfo,
    CabMember,
    cab_checksum,
    cfdata_checksum,
    dos_datetime_of,
    name_problem,
)
from .writer import write_cab

__all__ = [
    "ATTR_NAME_IS_UTF",
    "BLOCK_SIZE",
    "CFDATA",
    "CFDATA_SIZE",
    "CFFILE",
    "CFFILE_FIXED_SIZE",
    "CFFOLDER",
    "CFFOLDER_SIZE",
    "CFHEADER",
    "CFHEADER_FIXED_SIZE",
    "COMP_LZX",
    "COMP_MSZIP",
    "COMP_NONE",
    "COMP_QUANTUM",
    "DEFAULT_DOS_DATETIME",
    "DEFAULT_READ_MAX",
    "FLAG_NEXT_CABINET",
    "FLAG_PREV_CABINET",
    "FLAG_RESERVE_PRESENT",
    "MAX_BLOCKS_PER_FOLDER",
    "MAX_CABINET_SIZE",
    "MAX_FILE_SIZE",
    "MAX_FILES",
    "MAX_FOLDERS",
    "MAX_HEADER_RESERVE",
    "MAX_MSZIP_CBDATA",
    "MAX_NAME_BYTES",
    "MAX_READ_NAME_BYTES",
    "SIG_INSERT_SIZE",
    "SIG_LEN_POS",
    "SIG_OFFSET_POS",
    "SIG_RESERVE",
    "SIG_RESERVE_MAGIC",
    "SIG_RESERVE_SIZE",
    "CabEntry",
    "CabInfo",
    "CabMember",
    "CabReader",
    "append_signature",
    "cab_checksum",
    "cab_hash",
    "cfdata_checksum",
    "content_signature",
    "dos_datetime_of",
    "insert_signature_reserve",
    "name_problem",
    "write_cab",
]
