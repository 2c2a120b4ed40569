// The option rules of @eventual/outbox, shared so a name or number one package
// accepts, the other accepts too.
export {
  backoff,
  identifier,
  integer,
  knownKeys,
  nonEmptyString,
  object,
  oneOf,
  topicName,
} from '@eventual/outbox/internal';
