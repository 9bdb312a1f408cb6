// The part of autocannon's programmatic API the load generator uses (the package ships no types).
declare module 'autocannon' {
  function autocannon(opts: autocannon.Options, cb: (err: Error | null, result: autocannon.Result) => void): autocannon.Instance;
  namespace autocannon {
    interface RequestParams {
      method?: string;
      path?: string;
      headers?: Record<string, string>;
      body?: string;
    }
    interface Options {
      url: string;
      connections?: number;
      duration?: number;
      maxOverallRequests?: number;
      overallRate?: number;
      timeout?: number;
      requests?: (RequestParams & { setupRequest?: (req: RequestParams) => RequestParams })[];
    }
    interface Result {
      duration: number;
      errors: number;
      timeouts: number;
      non2xx: number;
    }
    interface Instance {
      on(event: 'response', listener: (client: unknown, statusCode: number, resBytes: number, responseTime: number) => void): this;
    }
  }
  export = autocannon;
}
