import type { Config } from './config.ts';
import { PipelineError } from './errors.ts';
import { Keyring } from './keyring.ts';

/**
 * The keyring a service checks definitions against: the one trust anchor every service that
 * acts on exp.definitions needs, since it accepts only records signed by a control principal.
 */
export function keyringFor(service: string, config: Config): Keyring {
  const file = config.control.keyringFile;
  if (!file) {
    throw new PipelineError('CONFIG_INVALID', `control.keyringFile (KEYRING_FILE) is required: ${service} acts only on experiment definitions signed by the control service, whose public key (a principal with the control role) is in the keyring`);
  }
  return Keyring.load(file);
}
