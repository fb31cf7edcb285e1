/**
 * Errors with Confluent Schema Registry's HTTP statuses and error codes, so clients written
 * for Confluent's registry (e.g. @kafkajs/confluent-schema-registry) react as they would there.
 */
export const REGISTRY_ERRORS = {
  SUBJECT_NOT_FOUND: { status: 404, code: 40401 },
  VERSION_NOT_FOUND: { status: 404, code: 40402 },
  SCHEMA_NOT_FOUND: { status: 404, code: 40403 },
  SUBJECT_COMPATIBILITY_NOT_CONFIGURED: { status: 404, code: 40408 },
  INCOMPATIBLE_SCHEMA: { status: 409, code: 409 },
  INVALID_SCHEMA: { status: 422, code: 42201 },
  INVALID_VERSION: { status: 422, code: 42202 },
  INVALID_COMPATIBILITY_LEVEL: { status: 422, code: 42203 },
  INVALID_SUBJECT: { status: 422, code: 42208 },
  SCHEMA_TOO_LARGE: { status: 422, code: 42209 },
  INVALID_REQUEST: { status: 400, code: 400 },
  STORE_ERROR: { status: 500, code: 50001 },
} as const;

export type RegistryErrorKind = keyof typeof REGISTRY_ERRORS;

export class RegistryError extends Error {
  readonly kind: RegistryErrorKind;
  readonly status: number;
  readonly errorCode: number;

  constructor(kind: RegistryErrorKind, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RegistryError';
    this.kind = kind;
    this.status = REGISTRY_ERRORS[kind].status;
    this.errorCode = REGISTRY_ERRORS[kind].code;
  }

  /** The JSON body Confluent's registry sends with an error. */
  toBody(): { error_code: number; message: string } {
    return { error_code: this.errorCode, message: this.message };
  }
}
