/**
 * The Entra clouds: each pairs a sign-in authority with its Microsoft Graph host, so choosing a
 * cloud sets both and the two cannot name different clouds by accident. Pure data.
 */
export const CLOUDS = {
  public: { authority: 'https://login.microsoftonline.com', graph: 'https://graph.microsoft.com' },
  usGovernment: { authority: 'https://login.microsoftonline.us', graph: 'https://graph.microsoft.us' },
  china: { authority: 'https://login.partner.microsoftonline.cn', graph: 'https://microsoftgraph.chinacloudapi.cn' },
} as const satisfies Record<string, { readonly authority: string; readonly graph: string }>;

export type CloudName = keyof typeof CLOUDS;

export const CLOUD_NAMES = Object.keys(CLOUDS) as [CloudName, ...CloudName[]];
