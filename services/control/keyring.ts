/** The keyring moved to services/common (every service that reads definitions verifies them against it). */
export * from '../common/keyring.ts';
