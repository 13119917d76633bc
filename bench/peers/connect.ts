import { Redis } from 'ioredis';

/**
 * A connected ioredis client, as an application would hold one before calling any of the libraries:
 * the handshake (HELLO, CLIENT SETINFO, INFO) happens here, before the bench starts counting.
 */
export async function connect(url: string): Promise<Redis> {
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  // Without a listener ioredis prints every connection error; a run's own errors are reported instead.
  client.on('error', () => {});
  await client.connect();
  return client;
}

/** Closes a client without waiting on a server that may be gone. */
export async function disconnect(client: Redis): Promise<void> {
  if (client.status === 'end') return;
  try {
    await Promise.race([client.quit(), new Promise((resolve) => setTimeout(resolve, 500))]);
  } catch {
    // already closing
  }
  client.disconnect();
}
