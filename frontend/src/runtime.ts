/**
 * The executor as the page runs it: settings, this tab's id, the connection
 * and the status store, wired together. React only renders it.
 */

import { Connection, type SocketFactory } from "./connection";
import type { FetchLike } from "./executor";
import { claimExecutorId, type ChannelLike } from "./identity";
import { selfTest, type SelfTestResult } from "./selftest";
import {
  SettingsError,
  checkConcurrency,
  checkToken,
  forgetSettings,
  loadSettings,
  mixedContentProblem,
  parseFragment,
  saveSettings,
  socketUrlFor,
  upstreamUrlFor,
  type KeyValueStore,
  type Settings,
} from "./settings";
import { StatusStore } from "./status";

export const SOFTWARE = `gemproxy-web/${__APP_VERSION__}`;

export interface RuntimeEnvironment {
  /** The page's protocol ("https:"), which decides what a bare gateway host means and what is mixed content. */
  pageProtocol: string;
  /** The page's URL fragment, which may carry settings. */
  fragment: string;
  /** Remove the fragment from the address bar, so the token does not linger there. */
  clearFragment: () => void;
  local: KeyValueStore;
  session: KeyValueStore;
  channel: ChannelLike | null;
  createSocket?: SocketFactory;
  fetch?: FetchLike;
  probe?: (httpUrl: string) => Promise<boolean>;
  /** The gateway that served this page (see servedGateway): the gateway URL until the person enters another. */
  servedGateway?: string;
}

export class ExecutorRuntime {
  readonly store = new StatusStore();
  private readonly connection: Connection;
  private current: Settings;
  private executorId: Promise<string>;

  constructor(private readonly env: RuntimeEnvironment) {
    this.connection = new Connection({
      observer: this.store,
      ...(env.createSocket ? { createSocket: env.createSocket } : {}),
      ...(env.fetch ? { fetch: env.fetch } : {}),
      ...(env.probe ? { probe: env.probe } : {}),
    });
    this.current = loadSettings(env.local);
    const fromFragment = parseFragment(env.fragment);
    if (Object.keys(fromFragment).length > 0) {
      this.current = { ...this.current, ...fromFragment };
      saveSettings(env.local, this.current);
      env.clearFragment();
    }
    this.current = this.withServedGateway(this.current);
    this.executorId = claimExecutorId({ session: env.session, channel: env.channel });
  }

  get settings(): Settings {
    return this.current;
  }

  /** Connect with the remembered settings, if there are enough of them. */
  async boot(): Promise<SettingsError | null> {
    if (!this.current.server || !this.current.token) {
      await this.identify(this.current);
      return null;
    }
    return this.connect(this.current);
  }

  /** Remember `settings` and (re)connect with them; a SettingsError says which field is wrong. */
  async connect(settings: Settings): Promise<SettingsError | null> {
    let socketUrl: string;
    let upstream: string;
    let token: string;
    let maxConcurrency: number;
    try {
      socketUrl = socketUrlFor(settings.server, this.env.pageProtocol);
      token = checkToken(settings.token);
      upstream = upstreamUrlFor(settings.upstream);
      maxConcurrency = checkConcurrency(settings.maxConcurrency);
    } catch (error) {
      if (error instanceof SettingsError) return error;
      throw error;
    }
    this.current = { ...settings, token };
    saveSettings(this.env.local, this.current);
    const { executorId, label } = await this.identify(this.current);

    const problem = mixedContentProblem(this.env.pageProtocol, socketUrl);
    if (problem) {
      this.connection.block(problem);
      return null;
    }
    this.connection.start({ socketUrl, token, upstream, maxConcurrency, label, executorId, software: SOFTWARE });
    return null;
  }

  disconnect(): void {
    this.connection.stop();
  }

  /** Stop and drop the remembered gateway and token from this browser. */
  forget(): void {
    this.connection.stop();
    forgetSettings(this.env.local);
    this.current = this.withServedGateway(loadSettings(this.env.local));
  }

  retryNow(): void {
    this.connection.retryNow();
  }

  selfTest(upstream: string): Promise<SelfTestResult> {
    let base: string;
    try {
      base = upstreamUrlFor(upstream);
    } catch (error) {
      return Promise.resolve({ ok: false, status: null, message: (error as Error).message });
    }
    return selfTest(base, this.env.fetch);
  }

  /** A remembered or typed gateway wins; the serving gateway only fills an empty field, and is not saved by itself. */
  private withServedGateway(settings: Settings): Settings {
    return !settings.server && this.env.servedGateway ? { ...settings, server: this.env.servedGateway } : settings;
  }

  private async identify(settings: Settings): Promise<{ executorId: string; label: string }> {
    const executorId = await this.executorId;
    const label = settings.label.trim() || `browser tab ${executorId.slice(0, 8)}`;
    this.store.identify({ executorId, label, maxConcurrency: settings.maxConcurrency, software: SOFTWARE });
    return { executorId, label };
  }
}
