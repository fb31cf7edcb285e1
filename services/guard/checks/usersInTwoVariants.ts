import type { GuardCheck } from './guardCheck.ts';

export const MIN_CONFLICTS = 20;
export const CONFLICT_SHARE = 0.01;

/** USERS_IN_TWO_VARIANTS: over 1 % of users, and at least 20, were exposed to more than one variant. A warning. */
export const usersInTwoVariants: GuardCheck<'USERS_IN_TWO_VARIANTS'> = {
  type: 'USERS_IN_TWO_VARIANTS',
  waitsForMinimumSample: false,
  setting: 'usersInTwoVariants',
  signals({ state, variants, users, base }) {
    const totalUsers = users.reduce((a, b) => a + b, 0);
    const conflicts = variants.reduce((n, v) => n + (state.variants[v]?.conflicts ?? 0), 0);
    if (!(conflicts >= MIN_CONFLICTS && conflicts > CONFLICT_SHARE * totalUsers)) return [];
    return [{ incident: 'CONFLICTS', type: 'USERS_IN_TWO_VARIANTS', severity: 'warning', halt: false, variantId: null, metric: null, reason: `${conflicts} of ${totalUsers} users were exposed to more than one variant`, evidence: { ...base, conflicts, share: conflicts / totalUsers, threshold: CONFLICT_SHARE } }];
  },
};
