import type { ScsiCommand, ScsiNexus } from './command.ts';
import type { AccessClass } from './command-table.ts';
import { AdditionalSense, MAX_REGISTRATIONS, SenseKey } from './constants.ts';
import {
  checkCondition,
  invalidFieldInCdb,
  invalidFieldInParameterList,
  reservationConflict,
} from './sense.ts';

/** Reservation types (SPC-4 table 169). */
export const ReservationType = {
  WRITE_EXCLUSIVE: 1,
  EXCLUSIVE_ACCESS: 3,
  WRITE_EXCLUSIVE_REGISTRANTS_ONLY: 5,
  EXCLUSIVE_ACCESS_REGISTRANTS_ONLY: 6,
  WRITE_EXCLUSIVE_ALL_REGISTRANTS: 7,
  EXCLUSIVE_ACCESS_ALL_REGISTRANTS: 8,
} as const;

const ReserveOutAction = {
  REGISTER: 0,
  RESERVE: 1,
  RELEASE: 2,
  CLEAR: 3,
  PREEMPT: 4,
  PREEMPT_AND_ABORT: 5,
  REGISTER_AND_IGNORE_EXISTING_KEY: 6,
} as const;

const ReserveInAction = {
  READ_KEYS: 0,
  READ_RESERVATION: 1,
  REPORT_CAPABILITIES: 2,
  READ_FULL_STATUS: 3,
} as const;

/** The basic PERSISTENT RESERVE OUT parameter list is 24 bytes (SPEC_I_PT is not supported). */
const PARAMETER_LIST_BYTES = 24;

interface Registration {
  key: bigint;
  nexus: ScsiNexus;
}

/** What the reservation logic needs from its logical unit. */
export interface ReservationHost {
  readonly descriptorSense: boolean;
  addUnitAttention(nexusKey: string, additionalSense: number): void;
  abortTasksOf(nexusKeys: string[]): void;
}

function isValidType(type: number): boolean {
  return type === 1 || type === 3 || (type >= 5 && type <= 8);
}

function isAllRegistrants(type: number): boolean {
  return (
    type === ReservationType.WRITE_EXCLUSIVE_ALL_REGISTRANTS ||
    type === ReservationType.EXCLUSIVE_ACCESS_ALL_REGISTRANTS
  );
}

function isRegistrantsOnly(type: number): boolean {
  return (
    type === ReservationType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY ||
    type === ReservationType.EXCLUSIVE_ACCESS_REGISTRANTS_ONLY
  );
}

function isExclusiveAccess(type: number): boolean {
  return (
    type === ReservationType.EXCLUSIVE_ACCESS ||
    type === ReservationType.EXCLUSIVE_ACCESS_REGISTRANTS_ONLY ||
    type === ReservationType.EXCLUSIVE_ACCESS_ALL_REGISTRANTS
  );
}

/**
 * Persistent reservations of one logical unit (SPC-4 5.13): registrations per I_T nexus,
 * at most one reservation, and the conflicts it causes for every other nexus. State lives in
 * memory for the life of the target (APTPL is not supported and reported as such).
 */
export class PersistentReservations {
  generation = 0;
  private readonly registrations = new Map<string, Registration>();
  /** Nexus key of the reservation holder (any registrant for the all-registrants types). */
  private holder: string | null = null;
  private type = 0;
  private readonly host: ReservationHost;

  constructor(host: ReservationHost) {
    this.host = host;
  }

  get reservationType(): number {
    return this.type;
  }

  registeredKey(nexusKey: string): bigint | undefined {
    return this.registrations.get(nexusKey)?.key;
  }

  /** True when `access` from this nexus conflicts with the reservation (SPC-4 table 66). */
  conflicts(nexusKey: string, access: AccessClass): boolean {
    if (this.type === 0 || access === 'always') return false;
    if (this.holds(nexusKey)) return false;
    if (access === 'read') return isExclusiveAccess(this.type);
    return true;
  }

  private holds(nexusKey: string): boolean {
    if (this.type === 0) return false;
    if (isAllRegistrants(this.type) || isRegistrantsOnly(this.type)) return this.registrations.has(nexusKey);
    return this.holder === nexusKey;
  }

  private isReservationHolder(nexusKey: string): boolean {
    if (this.type === 0) return false;
    if (isAllRegistrants(this.type)) return this.registrations.has(nexusKey);
    return this.holder === nexusKey;
  }

  // ---- PERSISTENT RESERVE IN ------------------------------------------------------------

  reserveIn(command: ScsiCommand): void {
    const serviceAction = command.cdb[1] & 0x1f;
    const allocationBytes = command.cdb.readUInt16BE(7);
    const out = command.buffer!;
    let length: number;
    switch (serviceAction) {
      case ReserveInAction.READ_KEYS:
        length = this.readKeys(out);
        break;
      case ReserveInAction.READ_RESERVATION:
        length = this.readReservation(out);
        break;
      case ReserveInAction.REPORT_CAPABILITIES:
        length = reportCapabilities(out);
        break;
      case ReserveInAction.READ_FULL_STATUS:
        length = this.readFullStatus(out);
        break;
      default:
        invalidFieldInCdb(command, this.host.descriptorSense, 1, 4);
        return;
    }
    command.dataInBytes = Math.min(length, allocationBytes);
  }

  private readKeys(out: Buffer): number {
    out.writeUInt32BE(this.generation >>> 0, 0);
    let offset = 8;
    for (const registration of this.registrations.values()) {
      if (offset + 8 <= out.length) out.writeBigUInt64BE(registration.key, offset);
      offset += 8;
    }
    out.writeUInt32BE(offset - 8, 4);
    return offset;
  }

  private readReservation(out: Buffer): number {
    out.writeUInt32BE(this.generation >>> 0, 0);
    if (this.type === 0) {
      out.writeUInt32BE(0, 4);
      return 8;
    }
    out.writeUInt32BE(16, 4);
    out.fill(0, 8, 24);
    const key = isAllRegistrants(this.type) ? 0n : (this.registrations.get(this.holder!)?.key ?? 0n);
    out.writeBigUInt64BE(key, 8);
    out[21] = this.type & 0x0f; // scope 0 (logical unit)
    return 24;
  }

  private readFullStatus(out: Buffer): number {
    out.writeUInt32BE(this.generation >>> 0, 0);
    let offset = 8;
    for (const [nexusKey, registration] of this.registrations) {
      const transportId = registration.nexus.transportId;
      const descriptorBytes = 24 + transportId.length;
      if (offset + descriptorBytes <= out.length) {
        out.fill(0, offset, offset + 24);
        out.writeBigUInt64BE(registration.key, offset);
        if (this.isReservationHolder(nexusKey)) {
          out[offset + 12] = 0x01; // R_HOLDER
          out[offset + 13] = this.type & 0x0f;
        }
        out.writeUInt16BE(registration.nexus.relativeTargetPortId, offset + 18);
        out.writeUInt32BE(transportId.length, offset + 20);
        out.set(transportId, offset + 24);
      }
      offset += descriptorBytes;
    }
    out.writeUInt32BE(offset - 8, 4);
    return offset;
  }

  // ---- PERSISTENT RESERVE OUT -----------------------------------------------------------

  /** Checks the CDB before the parameter list is transferred; false when the command already failed. */
  planReserveOut(command: ScsiCommand): boolean {
    const serviceAction = command.cdb[1] & 0x1f;
    if (serviceAction > ReserveOutAction.REGISTER_AND_IGNORE_EXISTING_KEY) {
      invalidFieldInCdb(command, this.host.descriptorSense, 1, 4);
      return false;
    }
    const parameterBytes = command.cdb.readUInt32BE(5);
    if (parameterBytes !== PARAMETER_LIST_BYTES) {
      checkCondition(
        command,
        SenseKey.ILLEGAL_REQUEST,
        AdditionalSense.PARAMETER_LIST_LENGTH_ERROR,
        this.host.descriptorSense,
      );
      return false;
    }
    command.dataOutBytes = parameterBytes;
    return true;
  }

  reserveOut(command: ScsiCommand): void {
    const sense = this.host.descriptorSense;
    const parameters = command.dataOut();
    if (parameters.length < PARAMETER_LIST_BYTES) {
      checkCondition(command, SenseKey.ILLEGAL_REQUEST, AdditionalSense.PARAMETER_LIST_LENGTH_ERROR, sense);
      return;
    }
    const serviceAction = command.cdb[1] & 0x1f;
    const scope = command.cdb[2] >> 4;
    const type = command.cdb[2] & 0x0f;
    const reservationKey = parameters.readBigUInt64BE(0);
    const serviceActionKey = parameters.readBigUInt64BE(8);
    const flags = parameters[20];
    // SPEC_I_PT is not supported.
    if (flags & 0x08) {
      invalidFieldInParameterList(command, sense, 20, 3);
      return;
    }
    // ALL_TG_PT is not supported.
    if (flags & 0x04) {
      invalidFieldInParameterList(command, sense, 20, 2);
      return;
    }
    // APTPL is not supported.
    if (flags & 0x01) {
      invalidFieldInParameterList(command, sense, 20, 0);
      return;
    }
    const nexus = command.nexus!;
    const registered = this.registrations.get(nexus.key);

    if (
      serviceAction === ReserveOutAction.REGISTER ||
      serviceAction === ReserveOutAction.REGISTER_AND_IGNORE_EXISTING_KEY
    ) {
      const ignoreExisting = serviceAction === ReserveOutAction.REGISTER_AND_IGNORE_EXISTING_KEY;
      if (registered === undefined) {
        if (!ignoreExisting && reservationKey !== 0n) {
          reservationConflict(command);
          return;
        }
        if (serviceActionKey === 0n) return;
        if (this.registrations.size >= MAX_REGISTRATIONS) {
          checkCondition(
            command,
            SenseKey.ILLEGAL_REQUEST,
            AdditionalSense.INVALID_FIELD_IN_PARAMETER_LIST,
            sense,
          );
          return;
        }
        this.registrations.set(nexus.key, { key: serviceActionKey, nexus });
        this.generation++;
        return;
      }
      if (!ignoreExisting && reservationKey !== registered.key) {
        reservationConflict(command);
        return;
      }
      if (serviceActionKey === 0n) this.unregister(nexus.key);
      else registered.key = serviceActionKey;
      this.generation++;
      return;
    }

    // Every other service action needs a registered nexus presenting its key.
    if (registered === undefined || reservationKey !== registered.key) {
      reservationConflict(command);
      return;
    }
    const needsType = serviceAction !== ReserveOutAction.CLEAR;
    if (needsType && scope !== 0) {
      invalidFieldInCdb(command, sense, 2, 7);
      return;
    }
    if (needsType && !isValidType(type)) {
      // PREEMPT without a reservation ignores the type; anything else needs a valid one.
      if (!(serviceAction >= ReserveOutAction.PREEMPT && this.type === 0)) {
        invalidFieldInCdb(command, sense, 2, 3);
        return;
      }
    }
    switch (serviceAction) {
      case ReserveOutAction.RESERVE:
        this.reserve(command, nexus.key, type);
        return;
      case ReserveOutAction.RELEASE:
        this.release(command, nexus.key, type);
        return;
      case ReserveOutAction.CLEAR:
        this.clear(nexus.key);
        return;
      default:
        this.preempt(
          command,
          nexus.key,
          type,
          serviceActionKey,
          serviceAction === ReserveOutAction.PREEMPT_AND_ABORT,
        );
        return;
    }
  }

  private reserve(command: ScsiCommand, nexusKey: string, type: number): void {
    if (this.type === 0) {
      this.type = type;
      this.holder = nexusKey;
      return;
    }
    if (this.isReservationHolder(nexusKey) && this.type === type) return;
    reservationConflict(command);
  }

  private release(command: ScsiCommand, nexusKey: string, type: number): void {
    if (this.type === 0 || !this.isReservationHolder(nexusKey)) return;
    if (this.type !== type) {
      checkCondition(
        command,
        SenseKey.ILLEGAL_REQUEST,
        AdditionalSense.INVALID_RELEASE_OF_PERSISTENT_RESERVATION,
        this.host.descriptorSense,
      );
      return;
    }
    const releasedType = this.type;
    this.type = 0;
    this.holder = null;
    if (isRegistrantsOnly(releasedType) || isAllRegistrants(releasedType)) {
      for (const key of this.registrations.keys()) {
        if (key !== nexusKey) this.host.addUnitAttention(key, AdditionalSense.RESERVATIONS_RELEASED);
      }
    }
  }

  private clear(nexusKey: string): void {
    for (const key of this.registrations.keys()) {
      if (key !== nexusKey) this.host.addUnitAttention(key, AdditionalSense.RESERVATIONS_PREEMPTED);
    }
    this.registrations.clear();
    this.type = 0;
    this.holder = null;
    this.generation++;
  }

  private preempt(
    command: ScsiCommand,
    nexusKey: string,
    type: number,
    serviceActionKey: bigint,
    abort: boolean,
  ): void {
    const sense = this.host.descriptorSense;
    const removed: string[] = [];
    const removeMatching = (matches: (registration: Registration, key: string) => boolean): void => {
      for (const [key, registration] of this.registrations) {
        if (key !== nexusKey && matches(registration, key)) removed.push(key);
      }
    };

    if (this.type === 0) {
      if (serviceActionKey === 0n) {
        invalidFieldInParameterList(command, sense, 8);
        return;
      }
      removeMatching((registration) => registration.key === serviceActionKey);
      if (removed.length === 0 && !this.matchesOwnKey(nexusKey, serviceActionKey)) {
        reservationConflict(command);
        return;
      }
    } else if (isAllRegistrants(this.type)) {
      if (serviceActionKey === 0n) {
        removeMatching(() => true);
        this.type = type;
        this.holder = nexusKey;
      } else {
        removeMatching((registration) => registration.key === serviceActionKey);
        if (removed.length === 0 && !this.matchesOwnKey(nexusKey, serviceActionKey)) {
          reservationConflict(command);
          return;
        }
      }
    } else {
      const holderKey = this.holder === null ? undefined : this.registrations.get(this.holder)?.key;
      if (holderKey === serviceActionKey) {
        removeMatching((registration) => registration.key === serviceActionKey);
        const previousType = this.type;
        this.type = type;
        this.holder = nexusKey;
        if (previousType !== type) {
          for (const key of this.registrations.keys()) {
            if (key !== nexusKey && !removed.includes(key)) {
              this.host.addUnitAttention(key, AdditionalSense.RESERVATIONS_RELEASED);
            }
          }
        }
      } else {
        if (serviceActionKey === 0n) {
          invalidFieldInParameterList(command, sense, 8);
          return;
        }
        removeMatching((registration) => registration.key === serviceActionKey);
        if (removed.length === 0 && !this.matchesOwnKey(nexusKey, serviceActionKey)) {
          reservationConflict(command);
          return;
        }
      }
    }
    for (const key of removed) {
      this.registrations.delete(key);
      this.host.addUnitAttention(key, AdditionalSense.REGISTRATIONS_PREEMPTED);
    }
    this.generation++;
    if (abort && removed.length > 0) this.host.abortTasksOf(removed);
  }

  private matchesOwnKey(nexusKey: string, key: bigint): boolean {
    return this.registrations.get(nexusKey)?.key === key;
  }

  /** Removes a registration; a holder that unregisters releases its reservation. */
  private unregister(nexusKey: string): void {
    this.registrations.delete(nexusKey);
    if (this.type === 0) return;
    if (isAllRegistrants(this.type)) {
      if (this.registrations.size === 0) {
        this.type = 0;
        this.holder = null;
      }
      return;
    }
    if (this.holder !== nexusKey) return;
    const releasedType = this.type;
    this.type = 0;
    this.holder = null;
    if (isRegistrantsOnly(releasedType)) {
      for (const key of this.registrations.keys())
        this.host.addUnitAttention(key, AdditionalSense.RESERVATIONS_RELEASED);
    }
  }
}

function reportCapabilities(out: Buffer): number {
  out.fill(0, 0, 8);
  out.writeUInt16BE(8, 0);
  // byte 2: CRH, SIP_C, ATP_C and PTPL_C all zero (no SPC-2 reservations, no SPEC_I_PT, ALL_TG_PT or APTPL)
  out[3] = 0x80; // TMV: the type mask is valid
  out[4] = 0x80 | 0x40 | 0x20 | 0x08 | 0x02; // WR_EX_AR, EX_AC_RO, WR_EX_RO, EX_AC, WR_EX
  out[5] = 0x01; // EX_AC_AR
  return 8;
}
