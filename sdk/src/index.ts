export {
  createTessera,
  type Tessera,
  TesseraError,
  type TesseraOptions,
  type TokenEvaluator,
} from './client.ts';
export {
  decideFromSnapshot,
  decideFromToken,
  type VerifiedToken,
  type VerifyOptions,
  verifyEntitlementsToken,
} from './local.ts';
export type * from './types.ts';
