/**
 * SCSI constants (SPC-4, SBC-3): operation codes, status, sense keys, additional sense codes
 * and the limits this logical unit reports. Every limit is a written-down upper bound.
 */

export const ScsiOpcode = {
  TEST_UNIT_READY: 0x00,
  REQUEST_SENSE: 0x03,
  READ_6: 0x08,
  WRITE_6: 0x0a,
  INQUIRY: 0x12,
  MODE_SELECT_6: 0x15,
  MODE_SENSE_6: 0x1a,
  START_STOP_UNIT: 0x1b,
  READ_CAPACITY_10: 0x25,
  READ_10: 0x28,
  WRITE_10: 0x2a,
  WRITE_AND_VERIFY_10: 0x2e,
  VERIFY_10: 0x2f,
  PRE_FETCH_10: 0x34,
  SYNCHRONIZE_CACHE_10: 0x35,
  WRITE_SAME_10: 0x41,
  UNMAP: 0x42,
  MODE_SELECT_10: 0x55,
  MODE_SENSE_10: 0x5a,
  PERSISTENT_RESERVE_IN: 0x5e,
  PERSISTENT_RESERVE_OUT: 0x5f,
  READ_16: 0x88,
  COMPARE_AND_WRITE: 0x89,
  WRITE_16: 0x8a,
  WRITE_AND_VERIFY_16: 0x8e,
  VERIFY_16: 0x8f,
  PRE_FETCH_16: 0x90,
  SYNCHRONIZE_CACHE_16: 0x91,
  WRITE_SAME_16: 0x93,
  SERVICE_ACTION_IN_16: 0x9e,
  REPORT_LUNS: 0xa0,
  MAINTENANCE_IN: 0xa3,
  READ_12: 0xa8,
  WRITE_12: 0xaa,
  WRITE_AND_VERIFY_12: 0xae,
  VERIFY_12: 0xaf,
} as const;

/** Service actions of SERVICE ACTION IN(16) and MAINTENANCE IN. */
export const ServiceAction = {
  READ_CAPACITY_16: 0x10,
  GET_LBA_STATUS: 0x12,
  REPORT_SUPPORTED_OPERATION_CODES: 0x0c,
} as const;

export const ScsiStatus = {
  GOOD: 0x00,
  CHECK_CONDITION: 0x02,
  CONDITION_MET: 0x04,
  BUSY: 0x08,
  RESERVATION_CONFLICT: 0x18,
  TASK_SET_FULL: 0x28,
  TASK_ABORTED: 0x40,
} as const;

export const SenseKey = {
  NO_SENSE: 0x0,
  NOT_READY: 0x2,
  MEDIUM_ERROR: 0x3,
  HARDWARE_ERROR: 0x4,
  ILLEGAL_REQUEST: 0x5,
  UNIT_ATTENTION: 0x6,
  DATA_PROTECT: 0x7,
  ABORTED_COMMAND: 0xb,
  MISCOMPARE: 0xe,
} as const;

/** Additional sense code and qualifier, as (ASC << 8) | ASCQ. */
export const AdditionalSense = {
  NO_ADDITIONAL_SENSE: 0x0000,
  LOGICAL_UNIT_NOT_READY_CAUSE_NOT_REPORTABLE: 0x0400,
  LOGICAL_UNIT_NOT_READY_INITIALIZING_COMMAND_REQUIRED: 0x0402,
  UNRECOVERED_READ_ERROR: 0x1100,
  PARAMETER_LIST_LENGTH_ERROR: 0x1a00,
  MISCOMPARE_DURING_VERIFY: 0x1d00,
  INVALID_OPERATION_CODE: 0x2000,
  LBA_OUT_OF_RANGE: 0x2100,
  INVALID_FIELD_IN_CDB: 0x2400,
  LOGICAL_UNIT_NOT_SUPPORTED: 0x2500,
  INVALID_FIELD_IN_PARAMETER_LIST: 0x2600,
  INVALID_RELEASE_OF_PERSISTENT_RESERVATION: 0x2604,
  WRITE_PROTECTED: 0x2700,
  SPACE_ALLOCATION_FAILED_WRITE_PROTECT: 0x2707,
  POWER_ON_RESET_OR_BUS_DEVICE_RESET: 0x2900,
  BUS_DEVICE_RESET_FUNCTION_OCCURRED: 0x2903,
  MODE_PARAMETERS_CHANGED: 0x2a01,
  RESERVATIONS_PREEMPTED: 0x2a03,
  RESERVATIONS_RELEASED: 0x2a04,
  REGISTRATIONS_PREEMPTED: 0x2a05,
  CAPACITY_DATA_HAS_CHANGED: 0x2a09,
  SAVING_PARAMETERS_NOT_SUPPORTED: 0x3900,
  INTERNAL_TARGET_FAILURE: 0x4400,
  INVALID_FIELD_IN_INFORMATION_UNIT: 0x0e03,
} as const;

/** Logical block size reported to initiators (bytes). */
export const LOGICAL_BLOCK_BYTES = 512;
/** log2(physical / logical): 4 KiB physical blocks over 512-byte logical blocks. */
export const PHYSICAL_BLOCK_EXPONENT = 3;
/** Largest sense data this layer produces (bytes); fixed format is 18, descriptor format 32. */
export const SENSE_BUFFER_BYTES = 32;
/** Largest data-in buffer for commands that are not media reads (INQUIRY, MODE SENSE, PRIN, …). */
export const MAX_CONTROL_DATA_BYTES = 64 * 1024;
/** Largest COMPARE AND WRITE (blocks): the CDB field is one byte. */
export const MAX_COMPARE_AND_WRITE_BLOCKS = 255;
/** Largest UNMAP range (512 MiB) and WRITE SAME range (2 GiB) in blocks, so one command never stalls the device for long. */
export const MAX_UNMAP_BLOCKS = 1024 * 1024;
export const MAX_WRITE_SAME_BLOCKS = 4 * 1024 * 1024;
/** Largest number of UNMAP block descriptors in one parameter list. */
export const MAX_UNMAP_DESCRIPTORS = 256;
/** Persistent reservation registrations per logical unit. */
export const MAX_REGISTRATIONS = 256;
/** Pending unit attention conditions per I_T nexus (older ones are dropped first). */
export const MAX_UNIT_ATTENTIONS = 8;
/** Chunk of a WRITE SAME that is written at once (bytes). */
export const WRITE_SAME_CHUNK_BYTES = 256 * 1024;
