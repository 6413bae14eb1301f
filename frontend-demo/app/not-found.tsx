import Link from 'next/link';

export default function NotFound() {
  return (
    <div className="not-found">
      <h1>Not found</h1>
      <p>That chat id is not valid.</p>
      <Link href="/" prefetch={false}>
        Start a new chat
      </Link>
    </div>
  );
}
