import type { Metadata } from 'next';
import { Brand } from '@/components/brand';
import { cookies } from 'next/headers';
import { redirect } from 'next/navigation';
import { SESSION_COOKIE, SESSION_SECONDS, USER_NAME_PATTERN, sessionSecret, signSession } from '@/lib/session';

export const metadata: Metadata = { title: 'Sign in · aisdk-bridge demo' };

type Props = { searchParams: Promise<{ next?: string; error?: string }> };

async function signIn(form: FormData) {
  'use server';
  const secret = sessionSecret();
  const name = String(form.get('name') ?? '').trim();
  const next = String(form.get('next') ?? '/');
  if (!secret) redirect('/');
  if (!USER_NAME_PATTERN.test(name)) redirect('/login?error=name');
  (await cookies()).set(SESSION_COOKIE, signSession(name, secret), {
    httpOnly: true,
    sameSite: 'lax',
    path: '/',
    maxAge: SESSION_SECONDS,
  });
  // Only a path of this site: never an open redirect.
  redirect(next.startsWith('/') && !next.startsWith('//') ? next : '/');
}

export default async function Login({ searchParams }: Props) {
  const { next, error } = await searchParams;
  if (!sessionSecret()) redirect('/'); // auth is off: nothing to sign in to
  return (
    <main className="login">
      <form action={signIn} className="login-card" data-testid="login-form">
        <Brand />
        <h1>Sign in</h1>
        <p>
          The bridge has auth on: your chats are kept under your name, and only you can read or
          follow them. (A demo: any name signs in; a real app asks its identity provider.)
        </p>
        <input type="hidden" name="next" value={next ?? '/'} />
        <input
          name="name"
          className="login-input"
          data-testid="login-name"
          placeholder="Your name, e.g. alice"
          autoComplete="username"
          required
        />
        {error ? <p className="login-error">Use letters, digits, and _ . @ - (up to 64).</p> : null}
        <button type="submit" className="button button-primary" data-testid="login-submit">
          Sign in
        </button>
      </form>
    </main>
  );
}
