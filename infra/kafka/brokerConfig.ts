/**
 * The configuration of the single-node local broker: one process that is both KRaft
 * controller and broker, on 127.0.0.1 only, with the internal topics sized for one node.
 */
export interface BrokerPorts {
  broker: number;
  controller: number;
}

/**
 * A locked-down broker for security tests: clients authenticate with SASL/SCRAM-SHA-256 and
 * the StandardAuthorizer denies whatever no ACL allows. The super user administers ACLs and
 * is the broker's own inter-broker identity; the controller listener stays plaintext on
 * 127.0.0.1 (its anonymous peer is the broker itself in this combined node).
 */
export interface BrokerSecurity {
  superUser: { name: string; password: string };
  users: { name: string; password: string }[];
}

export const SCRAM_MECHANISM = 'SCRAM-SHA-256';

export function serverProperties(options: { host: string; ports: BrokerPorts; logDir: string; security?: BrokerSecurity }): string {
  const { host, ports, logDir, security } = options;
  const protocol = security ? 'SASL_PLAINTEXT' : 'PLAINTEXT';
  const jaas = (u: { name: string; password: string }) => `org.apache.kafka.common.security.scram.ScramLoginModule required username="${u.name}" password="${u.password}";`;
  return [
    'process.roles=broker,controller',
    'node.id=1',
    `controller.quorum.voters=1@${host}:${ports.controller}`,
    `listeners=${protocol}://${host}:${ports.broker},CONTROLLER://${host}:${ports.controller}`,
    `advertised.listeners=${protocol}://${host}:${ports.broker}`,
    'controller.listener.names=CONTROLLER',
    `inter.broker.listener.name=${protocol}`,
    `listener.security.protocol.map=${protocol}:${protocol},CONTROLLER:PLAINTEXT`,
    ...(security
      ? [
          `sasl.enabled.mechanisms=${SCRAM_MECHANISM}`,
          `sasl.mechanism.inter.broker.protocol=${SCRAM_MECHANISM}`,
          `listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config=${jaas(security.superUser)}`,
          'authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer',
          `super.users=User:${security.superUser.name};User:ANONYMOUS`,
          'allow.everyone.if.no.acl.found=false',
        ]
      : []),
    `log.dirs=${logDir}`,
    // One node: internal topics cannot have more replicas than brokers, or consumer groups
    // report "coordinator not available" and transactions never initialise.
    'offsets.topic.replication.factor=1',
    'transaction.state.log.replication.factor=1',
    'transaction.state.log.min.isr=1',
    'share.coordinator.state.topic.replication.factor=1',
    'share.coordinator.state.topic.min.isr=1',
    // One partition each: a single node gains nothing from more, and each costs memory.
    'offsets.topic.num.partitions=1',
    'transaction.state.log.num.partitions=1',
    'group.initial.rebalance.delay.ms=0',
    'num.partitions=1',
    'default.replication.factor=1',
    'min.insync.replicas=1',
    // Topics are created on purpose, with their partitions and cleanup policy.
    'auto.create.topics.enable=false',
    'delete.topic.enable=true',
    // Compacted changelogs should compact soon enough to be observed in tests.
    'log.cleaner.min.compaction.lag.ms=0',
    'log.segment.bytes=67108864',
    '',
  ].join('\n');
}

/** Log4j2 for the broker: warnings, plus the start-up and shutdown lines. */
export const LOG4J2_PROPERTIES = [
  'status = warn',
  'appender.out.type = Console',
  'appender.out.name = STDOUT',
  'appender.out.layout.type = PatternLayout',
  'appender.out.layout.pattern = [%d] %p %m (%c)%n',
  'rootLogger.level = WARN',
  'rootLogger.appenderRef.out.ref = STDOUT',
  'logger.raftServer.name = kafka.server.KafkaRaftServer',
  'logger.raftServer.level = INFO',
  'logger.kafka.name = kafka.Kafka',
  'logger.kafka.level = INFO',
  '',
].join('\n');

/** Heap and GC sized for a development machine; the broker rarely needs more here. */
export const JVM_OPTIONS = ['-Xms256m', '-Xmx768m', '-XX:+UseG1GC', '-XX:MaxGCPauseMillis=20', '-Djava.awt.headless=true'];
