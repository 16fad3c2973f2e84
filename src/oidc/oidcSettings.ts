/** How ClawLoops signs people in through an OpenID provider (CLAWLOOPS_OIDC_*; see docs/configure.md). */
export interface OidcSettings {
  /** The provider's issuer, exactly as its ID tokens name it. */
  issuer: string;
  clientId: string;
  /** Null: a public client (PKCE alone proves the code was asked for by us). */
  clientSecret: string | null;
  scopes: string[];
  /** The claim that proposes a username (sanitised to the username rules, de-duplicated). */
  usernameClaim: string;
  /** The claim listing the person's groups. */
  groupsClaim: string;
  /** Members of this group are admins: at account creation, and at every sign-in with `roleSync`. */
  adminGroup: string | null;
  /** When not empty, only members of one of these groups may sign in. */
  allowedGroups: string[];
  /** When not empty, only verified emails at one of these domains may sign in. */
  allowedEmailDomains: string[];
  /** A person with no account and no invitation gets a member account (otherwise: refused). */
  autoCreate: boolean;
  /** The admin role follows `adminGroup` at every sign-in. */
  roleSync: boolean;
  /** Shown on the sign-in button: "Sign in with <displayName>". */
  displayName: string;
  /** Password sign-in is refused (setup and the admin CLI still work). */
  only: boolean;
  /** <public URL>/api/v1/auth/oidc/callback: registered at the provider. */
  redirectUri: string;
  /** Where the provider sends the browser after its own sign-out. */
  postLogoutRedirectUri: string;
}
