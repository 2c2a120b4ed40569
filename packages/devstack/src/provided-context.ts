// What the vitest globalSetup hands to test files through provide()/inject().
declare module 'vitest' {
  export interface ProvidedContext {
    devstack: { adminDatabaseUrl: string; kafkaBrokers: string[]; provider: string };
  }
}

export {};
