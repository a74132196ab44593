<?php
/**
 * Plugin Name:       instapipe
 * Description:       Sends each post to instapipe when it is published, signed with Standard Webhooks, and shows its Instagram status (published with the permalink, or why it failed) in the posts list and the editor.
 * Version:           2.0.0
 * Requires at least: 5.6
 * Requires PHP:      7.4
 * License:           MIT
 *
 * Settings → instapipe: the endpoint URL (https://<function url>/webhooks/wordpress), the
 * signing secret (whsec_…, the "wordpress" entry of instapipe's webhook secrets) and an optional
 * caption template. wp-config.php may set INSTAPIPE_ENDPOINT and INSTAPIPE_SECRET instead; they
 * win over the settings page. The same secret verifies instapipe's status webhooks, which arrive
 * at the REST route /wp-json/instapipe/v1/status (instapipe's StatusWebhookUrl).
 *
 * What is sent, once per post (the first time it becomes published, scheduled posts included):
 * {"type": "post.published", "timestamp": …, "data": {"site", "id", "post_type", "title",
 *  "excerpt", "permalink", "featured_image", "categories", "tags", "published_gmt",
 *  "modified_gmt", "password_protected"[, "caption_template"]}} with the headers webhook-id (the same for every retry
 * of this publish), webhook-timestamp and webhook-signature. It is sent right after the publish
 * request has finished (a non-blocking loopback request, so the editor never waits and the
 * terms and featured image the editor saves after publishing are in it); WP-Cron is only the
 * retry path (2, 4, 8, 16, 32 minutes) and a safety net should the loopback be lost.
 *
 * A password-protected post is never sent: it is marked "Not posted" with the reason, checked
 * again right before sending (a password set after publishing), and "Send again" refuses it
 * until its password is removed. instapipe refuses one too (422 protected_post).
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

const INSTAPIPE_OPTION_ENDPOINT = 'instapipe_endpoint';
const INSTAPIPE_OPTION_SECRET   = 'instapipe_secret';
const INSTAPIPE_OPTION_TEMPLATE = 'instapipe_caption_template';
/** The last "Send test": when, for which endpoint and secret (a keyed hash), and the answer. */
const INSTAPIPE_OPTION_TEST = 'instapipe_test';
/** The last refusal that says the connection is wrong (401, 404, unreachable to the end). */
const INSTAPIPE_OPTION_BROKEN = 'instapipe_broken';
/** When the last verified status webhook arrived. */
const INSTAPIPE_OPTION_LAST_STATUS = 'instapipe_last_status';

const INSTAPIPE_SEND_HOOK      = 'instapipe_send';
const INSTAPIPE_MAX_ATTEMPTS   = 6;
const INSTAPIPE_SAFETY_NET     = 60;
const INSTAPIPE_TOLERANCE      = 300;
const INSTAPIPE_REST_NAMESPACE = 'instapipe/v1';

// Post meta. The webhook-id of the current send, and every id this post was ever sent with.
const INSTAPIPE_META_ID       = '_instapipe_webhook_id';
const INSTAPIPE_META_EVENT_ID = '_instapipe_event_id';
// queued | retrying | sent | published | failed | skipped, with a sentence saying why.
const INSTAPIPE_META_STATE   = '_instapipe_state';
const INSTAPIPE_META_DETAIL  = '_instapipe_detail';
const INSTAPIPE_META_ATTEMPT = '_instapipe_attempt';
const INSTAPIPE_META_POST_ID = '_instapipe_post_id';
// Per Instagram account, from the status webhooks: state, permalink, media id, reason, time.
const INSTAPIPE_META_ACCOUNTS = '_instapipe_accounts';
const INSTAPIPE_META_RESENDS  = '_instapipe_resends';
const INSTAPIPE_META_DISMISS  = '_instapipe_notice_dismissed';
// Written by version 1 of the plugin: its posts count as sent.
const INSTAPIPE_META_LEGACY = '_instapipe_status';

const INSTAPIPE_PLACEHOLDERS = array( 'title', 'excerpt', 'link', 'hashtags', 'tags', 'categories', 'site' );

/** The endpoint and secret in effect: wp-config.php constants first, then the settings page. */
function instapipe_config() {
	$endpoint = defined( 'INSTAPIPE_ENDPOINT' ) ? INSTAPIPE_ENDPOINT : get_option( INSTAPIPE_OPTION_ENDPOINT, '' );
	$secret   = defined( 'INSTAPIPE_SECRET' ) ? INSTAPIPE_SECRET : get_option( INSTAPIPE_OPTION_SECRET, '' );
	return array( trim( (string) $endpoint ), trim( (string) $secret ) );
}

/** The HMAC key of a `whsec_<base64>` secret (24 to 64 bytes), or null. */
function instapipe_key( $secret ) {
	if ( 0 !== strpos( $secret, 'whsec_' ) ) {
		return null;
	}
	$key = base64_decode( substr( $secret, 6 ), true );
	if ( false === $key || strlen( $key ) < 24 || strlen( $key ) > 64 ) {
		return null;
	}
	return $key;
}

/** Post types that are sent (filter `instapipe_post_types`). */
function instapipe_post_types() {
	return (array) apply_filters( 'instapipe_post_types', array( 'post' ) );
}

/** Standard Webhooks: "v1," + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")). */
function instapipe_signature( $key, $id, $timestamp, $body ) {
	return 'v1,' . base64_encode( hash_hmac( 'sha256', $id . '.' . $timestamp . '.' . $body, $key, true ) );
}

/** Ties a stored test result to the endpoint and secret it was made with (a keyed hash, not the secret). */
function instapipe_fingerprint( $endpoint, $secret ) {
	return wp_hash( 'instapipe|' . $endpoint . '|' . $secret );
}

/**
 * Why an endpoint URL cannot be used (a sentence), or '' when it can. http:// is accepted for
 * loopback and private hosts only (a local or in-VPC instapipe); $warning says so.
 */
function instapipe_endpoint_problem( $url, &$warning = null ) {
	$warning = '';
	$parts   = wp_parse_url( $url );
	if ( ! is_array( $parts ) || empty( $parts['scheme'] ) || empty( $parts['host'] ) ) {
		return __( 'The endpoint must be a full URL such as https://…/webhooks/wordpress.', 'instapipe' );
	}
	$scheme = strtolower( $parts['scheme'] );
	if ( 'https' === $scheme ) {
		return '';
	}
	if ( 'http' !== $scheme ) {
		return __( 'The endpoint must be an https:// URL.', 'instapipe' );
	}
	if ( ! instapipe_is_private_host( $parts['host'] ) ) {
		return __( 'The endpoint must be an https:// URL (http:// is accepted only for loopback and private network addresses).', 'instapipe' );
	}
	$warning = __( 'The endpoint uses http://: requests are not encrypted. That is fine for a local or private-network instapipe only.', 'instapipe' );
	return '';
}

/** localhost, or an address (or a name resolving only to addresses) in a loopback or private range. */
function instapipe_is_private_host( $host ) {
	$host = strtolower( trim( $host, '[]' ) );
	if ( 'localhost' === $host || '.localhost' === substr( $host, -10 ) ) {
		return true;
	}
	$addresses = filter_var( $host, FILTER_VALIDATE_IP ) ? array( $host ) : (array) gethostbynamel( $host );
	if ( empty( $addresses ) ) {
		return false;
	}
	foreach ( $addresses as $ip ) {
		$public = filter_var( $ip, FILTER_VALIDATE_IP, FILTER_FLAG_NO_PRIV_RANGE | FILTER_FLAG_NO_RES_RANGE );
		if ( false !== $public ) {
			return false;
		}
	}
	return true;
}

/**
 * Why a caption template is not valid (a sentence), or ''. The rules of instapipe's routing:
 * {placeholder}s from INSTAPIPE_PLACEHOLDERS, {{ and }} for literal braces.
 */
function instapipe_template_problem( $template ) {
	$length = strlen( $template );
	for ( $i = 0; $i < $length; $i++ ) {
		$c = $template[ $i ];
		if ( ( '{' === $c || '}' === $c ) && $i + 1 < $length && $template[ $i + 1 ] === $c ) {
			++$i;
			continue;
		}
		if ( '}' === $c ) {
			return __( 'A lone "}" (write "}}" for a literal brace).', 'instapipe' );
		}
		if ( '{' === $c ) {
			$end = strpos( $template, '}', $i + 1 );
			if ( false === $end ) {
				return __( 'A "{" is not closed with "}".', 'instapipe' );
			}
			$name = substr( $template, $i + 1, $end - $i - 1 );
			if ( ! in_array( $name, INSTAPIPE_PLACEHOLDERS, true ) ) {
				/* translators: 1: the unknown placeholder, 2: the list of placeholders */
				return sprintf( __( 'Unknown placeholder {%1$s}; the placeholders are %2$s.', 'instapipe' ), $name, '{' . implode( '}, {', INSTAPIPE_PLACEHOLDERS ) . '}' );
			}
			$i = $end;
		}
	}
	return '';
}

// ---------------------------------------------------------------- state of a post

/** The post's state and the sentence that goes with it. */
function instapipe_state( $post_id ) {
	$state = (string) get_post_meta( $post_id, INSTAPIPE_META_STATE, true );
	if ( '' === $state ) {
		$legacy = (string) get_post_meta( $post_id, INSTAPIPE_META_LEGACY, true );
		// Version 1's sentences: "queued", "retrying after …", "sent: …", "failed: …", "not sent: …".
		foreach ( array( 'queued', 'retrying', 'sent', 'failed', 'not sent' ) as $prefix ) {
			if ( 0 === strpos( $legacy, $prefix ) ) {
				return array( 'not sent' === $prefix ? 'failed' : $prefix, $legacy );
			}
		}
	}
	return array( $state, (string) get_post_meta( $post_id, INSTAPIPE_META_DETAIL, true ) );
}

function instapipe_set_state( $post_id, $state, $detail ) {
	$previous = (string) get_post_meta( $post_id, INSTAPIPE_META_STATE, true );
	update_post_meta( $post_id, INSTAPIPE_META_STATE, $state );
	update_post_meta( $post_id, INSTAPIPE_META_DETAIL, instapipe_clip( $detail ) );
	if ( 'failed' === $state && 'failed' !== $previous ) {
		// A new failure is shown again in the admin notice, even if an older one was dismissed.
		delete_post_meta( $post_id, INSTAPIPE_META_DISMISS );
	}
}

/** Plain text of at most 300 characters, for meta that the admin screens print (escaped). */
function instapipe_clip( $text ) {
	$text = sanitize_text_field( (string) $text );
	return mb_strlen( $text ) > 300 ? mb_substr( $text, 0, 299 ) . '…' : $text;
}

// ---------------------------------------------------------------- publishing

add_action(
	'transition_post_status',
	function ( $new_status, $old_status, $post ) {
		if ( 'publish' !== $new_status || 'publish' === $old_status ) {
			return;
		}
		if ( ! in_array( $post->post_type, instapipe_post_types(), true ) || wp_is_post_revision( $post ) ) {
			return;
		}
		list( $state ) = instapipe_state( $post->ID );
		if ( instapipe_is_protected( $post ) ) {
			if ( ! in_array( $state, array( 'sent', 'published' ), true ) ) {
				wp_clear_scheduled_hook( INSTAPIPE_SEND_HOOK, array( $post->ID ) );
				instapipe_set_state( $post->ID, 'skipped', instapipe_protected_reason() );
			}
			return;
		}
		if ( '' === $state && '' === get_post_meta( $post->ID, INSTAPIPE_META_ID, true ) ) {
			// The first publish: one id for it, kept for every retry, so instapipe de-duplicates them.
			instapipe_new_webhook_id( $post );
			update_post_meta( $post->ID, INSTAPIPE_META_ATTEMPT, 0 );
		} elseif ( ! in_array( $state, array( 'queued', 'retrying' ), true ) ) {
			// Sent before (or refused): publishing again sends nothing new; "Send again" does.
			return;
		}
		// Published again before it was sent (unpublished in between): it goes now, with its id.
		instapipe_queue( $post->ID );
	},
	10,
	3
);

/** Whether the post is password-protected: such a post is never sent to Instagram. */
function instapipe_is_protected( $post ) {
	return '' !== (string) $post->post_password;
}

function instapipe_protected_reason() {
	return __( 'Not sent: the post is password-protected, and protected posts are never sent to Instagram. Remove the password, then use "Send again".', 'instapipe' );
}

/** A new webhook-id for this post ("." is not allowed in it), remembered for the status webhooks. */
function instapipe_new_webhook_id( $post ) {
	$resends = (int) get_post_meta( $post->ID, INSTAPIPE_META_RESENDS, true );
	$id      = 'msg_' . substr( hash( 'sha256', home_url( '/' ) . '|' . $post->ID . '|' . $post->post_modified_gmt . '|' . $resends ), 0, 32 );
	update_post_meta( $post->ID, INSTAPIPE_META_ID, $id );
	add_post_meta( $post->ID, INSTAPIPE_META_EVENT_ID, $id );
	return $id;
}

/**
 * Marks the post queued and sends it right after this request: a non-blocking loopback request
 * at shutdown, when the editor has saved terms and featured image. A WP-Cron event a minute
 * later is the safety net should the loopback be lost (a host that blocks loopbacks).
 */
function instapipe_queue( $post_id ) {
	list( $state ) = instapipe_state( $post_id );
	if ( 'retrying' !== $state ) {
		instapipe_set_state( $post_id, 'queued', __( 'Queued: sent to instapipe right after publishing.', 'instapipe' ) );
	}
	wp_clear_scheduled_hook( INSTAPIPE_SEND_HOOK, array( $post_id ) );
	wp_schedule_single_event( time() + INSTAPIPE_SAFETY_NET, INSTAPIPE_SEND_HOOK, array( $post_id ) );
	$GLOBALS['instapipe_kicks'][ $post_id ] = true;
	if ( ! has_action( 'shutdown', 'instapipe_kick_queued' ) ) {
		add_action( 'shutdown', 'instapipe_kick_queued', 1 );
	}
}

/** The loopback token of a post's current send: a keyed hash of the post and its webhook-id. */
function instapipe_kick_token( $post_id ) {
	return wp_hash( 'instapipe-send|' . $post_id . '|' . get_post_meta( $post_id, INSTAPIPE_META_ID, true ) );
}

function instapipe_kick_queued() {
	$post_ids = array_keys( isset( $GLOBALS['instapipe_kicks'] ) ? (array) $GLOBALS['instapipe_kicks'] : array() );
	$GLOBALS['instapipe_kicks'] = array();
	foreach ( $post_ids as $post_id ) {
		wp_remote_post(
			rest_url( INSTAPIPE_REST_NAMESPACE . '/send' ),
			array(
				'blocking'  => false,
				'timeout'   => (float) apply_filters( 'instapipe_loopback_timeout', 0.05 ),
				'body'      => array(
					'post'  => (int) $post_id,
					'token' => instapipe_kick_token( $post_id ),
				),
				// The same rule WordPress uses for its own cron loopback.
				'sslverify' => apply_filters( 'https_local_ssl_verify', false ),
			)
		);
	}
}

// ---------------------------------------------------------------- sending

/** The request body, in the same encoding every time (wp_json_encode's defaults). */
function instapipe_payload( $post ) {
	$terms    = function ( $taxonomy ) use ( $post ) {
		$names = wp_get_post_terms( $post->ID, $taxonomy, array( 'fields' => 'names' ) );
		return is_wp_error( $names ) ? array() : array_values( array_map( 'instapipe_plain_text', $names ) );
	};
	$image    = get_the_post_thumbnail_url( $post, 'full' );
	$data     = array(
		'site'           => home_url( '/' ),
		'id'             => $post->ID,
		'post_type'      => $post->post_type,
		'title'          => instapipe_plain_text( get_the_title( $post ) ),
		'excerpt'        => instapipe_excerpt( $post ),
		'permalink'      => get_permalink( $post ),
		'featured_image' => $image ? $image : null,
		'categories'     => $terms( 'category' ),
		'tags'           => $terms( 'post_tag' ),
		'published_gmt'  => get_post_time( 'Y-m-d\TH:i:s\Z', true, $post ),
		'modified_gmt'   => get_post_modified_time( 'Y-m-d\TH:i:s\Z', true, $post ),
		// Never true from here (such posts are not sent); instapipe refuses one that says so.
		'password_protected' => instapipe_is_protected( $post ),
	);
	$template = trim( (string) get_option( INSTAPIPE_OPTION_TEMPLATE, '' ) );
	if ( '' !== $template ) {
		$data['caption_template'] = $template;
	}
	$event = array(
		'type'      => 'post.published',
		'timestamp' => gmdate( 'c' ),
		'data'      => $data,
	);
	return wp_json_encode( apply_filters( 'instapipe_payload', $event, $post ) );
}

/** Text without tags, entities or runs of white space. */
function instapipe_plain_text( $text ) {
	$text = html_entity_decode( wp_strip_all_tags( (string) $text ), ENT_QUOTES | ENT_HTML5, 'UTF-8' );
	return trim( preg_replace( '/\s+/u', ' ', $text ) );
}

/** The excerpt as text: an automatic one ends in "…", not "[…]" (whatever the theme makes of it). */
function instapipe_excerpt( $post ) {
	$no_more = function () {
		return '…';
	};
	add_filter( 'excerpt_more', $no_more, PHP_INT_MAX );
	$excerpt = get_the_excerpt( $post );
	remove_filter( 'excerpt_more', $no_more, PHP_INT_MAX );
	$text = instapipe_plain_text( $excerpt );
	return trim( preg_replace( '/\s*\[(?:…|\.\.\.)\]$/u', '…', $text ) );
}

/** instapipe's JSON error as a sentence: "invalid_field (media[0].url): …". */
function instapipe_answer_reason( $response ) {
	if ( is_wp_error( $response ) ) {
		return $response->get_error_message();
	}
	$code   = (int) wp_remote_retrieve_response_code( $response );
	$answer = json_decode( wp_remote_retrieve_body( $response ), true );
	$why    = 'HTTP ' . $code;
	if ( is_array( $answer ) && isset( $answer['error'] ) && is_array( $answer['error'] ) ) {
		$error = $answer['error'];
		$why  .= ' ' . ( isset( $error['code'] ) ? $error['code'] : '' );
		$why  .= isset( $error['field'] ) ? ' (' . $error['field'] . ')' : '';
		$why  .= isset( $error['message'] ) ? ': ' . $error['message'] : '';
	}
	return $why;
}

/** Sends the post if it is queued or retrying; $via says who asked ("loopback", "cron"). */
function instapipe_send( $post_id, $via ) {
	$post_id = (int) $post_id;
	// One sender at a time per post: add_option is atomic (the option name is unique).
	$lock = 'instapipe_lock_' . $post_id;
	if ( ! add_option( $lock, time(), '', 'no' ) ) {
		if ( (int) get_option( $lock ) > time() - 120 ) {
			return;
		}
		delete_option( $lock ); // left by a sender that died
		if ( ! add_option( $lock, time(), '', 'no' ) ) {
			return;
		}
	}
	try {
		instapipe_send_locked( $post_id, $via );
	} finally {
		delete_option( $lock );
	}
}

function instapipe_send_locked( $post_id, $via ) {
	wp_cache_delete( $post_id, 'post_meta' ); // another request may have changed it
	clean_post_cache( $post_id );
	$post          = get_post( $post_id );
	$id            = (string) get_post_meta( $post_id, INSTAPIPE_META_ID, true );
	list( $state ) = instapipe_state( $post_id );
	if ( ! $post || '' === $id || ! in_array( $state, array( 'queued', 'retrying' ), true ) ) {
		return;
	}
	if ( 'publish' !== $post->post_status ) {
		// Unpublished before it was sent: it stays queued and goes when published again.
		wp_clear_scheduled_hook( INSTAPIPE_SEND_HOOK, array( $post_id ) );
		instapipe_set_state( $post_id, $state, __( 'Waiting: the post is not published any more; it is sent when it is published again.', 'instapipe' ) );
		return;
	}
	if ( instapipe_is_protected( $post ) ) {
		// A password set after publishing, before the send.
		wp_clear_scheduled_hook( INSTAPIPE_SEND_HOOK, array( $post_id ) );
		instapipe_set_state( $post_id, 'skipped', instapipe_protected_reason() );
		return;
	}
	list( $endpoint, $secret ) = instapipe_config();
	$key                       = instapipe_key( $secret );
	if ( '' === $endpoint || null === $key ) {
		wp_clear_scheduled_hook( INSTAPIPE_SEND_HOOK, array( $post_id ) );
		instapipe_set_state( $post_id, 'failed', __( 'Not sent: the endpoint or the signing secret is not configured (Settings → instapipe).', 'instapipe' ) );
		return;
	}
	$attempt = (int) get_post_meta( $post_id, INSTAPIPE_META_ATTEMPT, true ) + 1;
	update_post_meta( $post_id, INSTAPIPE_META_ATTEMPT, $attempt );
	$body      = instapipe_payload( $post );
	$timestamp = time();
	$response  = wp_remote_post(
		$endpoint,
		array(
			'timeout'     => 15,
			'redirection' => 0,
			'body'        => $body,
			'headers'     => array(
				'Content-Type'      => 'application/json',
				'webhook-id'        => $id,
				'webhook-timestamp' => (string) $timestamp,
				'webhook-signature' => instapipe_signature( $key, $id, $timestamp, $body ),
			),
		)
	);
	$code = is_wp_error( $response ) ? 0 : (int) wp_remote_retrieve_response_code( $response );
	if ( $code >= 200 && $code < 300 ) {
		wp_clear_scheduled_hook( INSTAPIPE_SEND_HOOK, array( $post_id ) );
		delete_option( INSTAPIPE_OPTION_BROKEN );
		instapipe_accepted( $post_id, json_decode( wp_remote_retrieve_body( $response ), true ) );
		return;
	}
	$why = instapipe_answer_reason( $response );
	// A refusal other than a timeout or throttling will not change on retry.
	$final = $code >= 400 && $code < 500 && 408 !== $code && 429 !== $code;
	if ( in_array( $code, array( 401, 403, 404 ), true ) || ( ! $final && $attempt >= INSTAPIPE_MAX_ATTEMPTS ) ) {
		// The connection itself is wrong: the settings page stops saying "Ready" (until the
		// endpoint or secret is changed and tested again).
		update_option(
			INSTAPIPE_OPTION_BROKEN,
			array(
				'at'          => time(),
				'why'         => instapipe_clip( $why ),
				'fingerprint' => instapipe_fingerprint( $endpoint, $secret ),
			),
			false
		);
	}
	if ( $final || $attempt >= INSTAPIPE_MAX_ATTEMPTS ) {
		wp_clear_scheduled_hook( INSTAPIPE_SEND_HOOK, array( $post_id ) );
		/* translators: 1: number of attempts, 2: instapipe's answer */
		instapipe_set_state( $post_id, 'failed', sprintf( _n( 'Not sent after %1$d attempt: %2$s', 'Not sent after %1$d attempts: %2$s', $attempt, 'instapipe' ), $attempt, $why ) );
		return;
	}
	// 2, 4, 8, 16, 32 minutes.
	$next = time() + 60 * ( 2 ** $attempt );
	wp_clear_scheduled_hook( INSTAPIPE_SEND_HOOK, array( $post_id ) );
	wp_schedule_single_event( $next, INSTAPIPE_SEND_HOOK, array( $post_id ) );
	/* translators: 1: attempt number, 2: instapipe's answer or the network error, 3: time of the next attempt */
	instapipe_set_state( $post_id, 'retrying', sprintf( __( 'Attempt %1$d failed (%2$s); next attempt at %3$s.', 'instapipe' ), $attempt, $why, wp_date( 'H:i', $next ) ) );
}

/** instapipe's 2xx answer: a post (new or already known), or acknowledged without a post. */
function instapipe_accepted( $post_id, $answer ) {
	$answer = is_array( $answer ) ? $answer : array();
	if ( ! empty( $answer['skipped'] ) ) {
		$reason = isset( $answer['reason'] ) ? (string) $answer['reason'] : '';
		/* translators: %s: instapipe's reason */
		instapipe_set_state( $post_id, 'skipped', sprintf( __( 'instapipe made no Instagram post: %s', 'instapipe' ), $reason ) );
		return;
	}
	$instapipe_id = isset( $answer['post_id'] ) ? sanitize_text_field( (string) $answer['post_id'] ) : '';
	if ( '' !== $instapipe_id ) {
		update_post_meta( $post_id, INSTAPIPE_META_POST_ID, $instapipe_id );
	}
	list( $state ) = instapipe_state( $post_id );
	if ( ! in_array( $state, array( 'queued', 'retrying' ), true ) ) {
		return; // a status webhook was faster than this answer
	}
	if ( ! empty( $answer['duplicate'] ) ) {
		$accounts = instapipe_accounts( $post_id );
		if ( ! empty( $accounts ) ) {
			instapipe_apply_accounts( $post_id, $accounts );
			return;
		}
		/* translators: %s: instapipe's post id */
		instapipe_set_state( $post_id, 'sent', sprintf( __( 'instapipe already had this post (%s); it was not posted again. Waiting for Instagram.', 'instapipe' ), $instapipe_id ) );
		return;
	}
	/* translators: %s: instapipe's post id */
	instapipe_set_state( $post_id, 'sent', sprintf( __( 'Sent: instapipe post %s; waiting for Instagram.', 'instapipe' ), $instapipe_id ) );
	// A status webhook may have come in while this answer was on its way: the accounts it wrote
	// decide (whichever request writes last, it derives the state from them).
	wp_cache_delete( $post_id, 'post_meta' );
	$accounts = instapipe_accounts( $post_id );
	if ( ! empty( $accounts ) ) {
		instapipe_apply_accounts( $post_id, $accounts );
	}
}

add_action(
	INSTAPIPE_SEND_HOOK,
	function ( $post_id ) {
		instapipe_send( $post_id, 'cron' );
	},
	10,
	1
);

// ---------------------------------------------------------------- REST: loopback and status webhooks

add_action(
	'rest_api_init',
	function () {
		register_rest_route(
			INSTAPIPE_REST_NAMESPACE,
			'/send',
			array(
				'methods'             => 'POST',
				'callback'            => function ( WP_REST_Request $request ) {
					ignore_user_abort( true ); // the loopback's caller does not wait for the answer
					instapipe_send( (int) $request['post'], 'loopback' );
					return new WP_REST_Response( null, 204 );
				},
				// The caller is this site: it proves it with a keyed hash only this site can make.
				'permission_callback' => function ( WP_REST_Request $request ) {
					$post_id = (int) $request['post'];
					$token   = (string) $request['token'];
					return $post_id > 0 && '' !== $token && hash_equals( instapipe_kick_token( $post_id ), $token );
				},
				'args'                => array(
					'post'  => array(
						'type'     => 'integer',
						'required' => true,
					),
					'token' => array(
						'type'     => 'string',
						'required' => true,
					),
				),
			)
		);
		register_rest_route(
			INSTAPIPE_REST_NAMESPACE,
			'/status',
			array(
				'methods'             => 'POST',
				'callback'            => 'instapipe_receive_status',
				// Authenticated by its Standard Webhooks signature, checked in the callback.
				'permission_callback' => '__return_true',
			)
		);
	}
);

/** Verifies a Standard Webhooks request: null when it is genuine, else a WP_Error (401). */
function instapipe_verify( WP_REST_Request $request, $key ) {
	$id        = (string) $request->get_header( 'webhook-id' );
	$timestamp = (string) $request->get_header( 'webhook-timestamp' );
	$signature = (string) $request->get_header( 'webhook-signature' );
	$refuse    = function ( $message ) {
		return new WP_Error( 'invalid_signature', $message, array( 'status' => 401 ) );
	};
	if ( '' === $id || '' === $timestamp || '' === $signature ) {
		return $refuse( 'webhook-id, webhook-timestamp and webhook-signature are required' );
	}
	if ( ! ctype_digit( $timestamp ) || abs( time() - (int) $timestamp ) > INSTAPIPE_TOLERANCE ) {
		return $refuse( 'webhook-timestamp is not within 5 minutes of now' );
	}
	$expected = instapipe_signature( $key, $id, $timestamp, $request->get_body() );
	foreach ( preg_split( '/\s+/', trim( $signature ) ) as $candidate ) {
		if ( hash_equals( $expected, $candidate ) ) {
			return null;
		}
	}
	return $refuse( 'no valid v1 signature' );
}

/** POST /instapipe/v1/status: instapipe's post.published / post.failed for one Instagram account. */
function instapipe_receive_status( WP_REST_Request $request ) {
	list( , $secret ) = instapipe_config();
	$key              = instapipe_key( $secret );
	if ( null === $key ) {
		return new WP_Error( 'not_configured', 'the instapipe plugin has no signing secret', array( 'status' => 503 ) );
	}
	$refused = instapipe_verify( $request, $key );
	if ( null !== $refused ) {
		return $refused;
	}
	$event = json_decode( $request->get_body(), true );
	if ( ! is_array( $event ) || ! isset( $event['type'], $event['data'] ) || ! is_array( $event['data'] ) ) {
		return new WP_Error( 'invalid_body', 'expected {"type", "timestamp", "data"}', array( 'status' => 400 ) );
	}
	update_option(
		INSTAPIPE_OPTION_LAST_STATUS,
		array(
			'at'   => time(),
			'type' => sanitize_text_field( (string) $event['type'] ),
		),
		false
	);
	if ( ! in_array( $event['type'], array( 'post.published', 'post.failed' ), true ) ) {
		return new WP_REST_Response( array( 'ignored' => 'event type not handled' ), 200 );
	}
	$data    = $event['data'];
	$account = isset( $data['account_id'] ) ? sanitize_text_field( (string) $data['account_id'] ) : '';
	if ( '' === $account ) {
		return new WP_Error( 'invalid_body', 'data.account_id is required', array( 'status' => 400 ) );
	}
	$post_id = instapipe_find_post( $data );
	if ( 0 === $post_id ) {
		// Another source's post (instapipe has one status URL for all of them): acknowledged.
		return new WP_REST_Response( array( 'ignored' => 'not a post of this site' ), 200 );
	}
	$accounts = instapipe_accounts( $post_id );
	$at       = isset( $event['timestamp'] ) ? (int) strtotime( (string) $event['timestamp'] ) : time();
	if ( isset( $accounts[ $account ] ) && $accounts[ $account ]['at'] > $at ) {
		return new WP_REST_Response( array( 'ignored' => 'older than the state already stored' ), 200 );
	}
	$failure              = isset( $data['failure'] ) && is_array( $data['failure'] ) ? $data['failure'] : array();
	$accounts[ $account ] = array(
		'state'     => 'post.published' === $event['type'] ? 'published' : 'failed',
		'permalink' => isset( $data['permalink'] ) ? esc_url_raw( (string) $data['permalink'], array( 'https', 'http' ) ) : '',
		'media_id'  => isset( $data['media_id'] ) ? sanitize_text_field( (string) $data['media_id'] ) : '',
		'reason'    => isset( $failure['reason'] ) ? instapipe_clip( $failure['reason'] ) : '',
		'at'        => $at,
	);
	if ( isset( $data['post_id'] ) && '' === get_post_meta( $post_id, INSTAPIPE_META_POST_ID, true ) ) {
		update_post_meta( $post_id, INSTAPIPE_META_POST_ID, sanitize_text_field( (string) $data['post_id'] ) );
	}
	update_post_meta( $post_id, INSTAPIPE_META_ACCOUNTS, $accounts );
	instapipe_apply_accounts( $post_id, $accounts );
	return new WP_REST_Response( array( 'received' => true ), 200 );
}

/** The WordPress post a status event is about: by instapipe's post id, else by the webhook-id we sent. */
function instapipe_find_post( $data ) {
	$by = array();
	if ( isset( $data['post_id'] ) && '' !== (string) $data['post_id'] ) {
		$by[] = array( INSTAPIPE_META_POST_ID, (string) $data['post_id'] );
	}
	if ( isset( $data['source'], $data['source_event_id'] ) && 'wordpress' === $data['source'] ) {
		$by[] = array( INSTAPIPE_META_EVENT_ID, (string) $data['source_event_id'] );
	}
	foreach ( $by as list( $meta_key, $value ) ) {
		$found = get_posts(
			array(
				'post_type'        => instapipe_post_types(),
				'post_status'      => 'any',
				'numberposts'      => 1,
				'fields'           => 'ids',
				'meta_key'         => $meta_key, // phpcs:ignore WordPress.DB.SlowDBQuery
				'meta_value'       => $value, // phpcs:ignore WordPress.DB.SlowDBQuery
				'suppress_filters' => true,
			)
		);
		if ( ! empty( $found ) ) {
			return (int) $found[0];
		}
	}
	return 0;
}

/** Per Instagram account: state, permalink, media_id, reason, at. */
function instapipe_accounts( $post_id ) {
	$accounts = get_post_meta( $post_id, INSTAPIPE_META_ACCOUNTS, true );
	return is_array( $accounts ) ? $accounts : array();
}

/** The post's state from its accounts': published when every one is, failed when one failed. */
function instapipe_apply_accounts( $post_id, $accounts ) {
	$failed = array();
	foreach ( $accounts as $account => $a ) {
		if ( 'failed' === $a['state'] ) {
			$failed[] = $account . ': ' . ( '' !== $a['reason'] ? $a['reason'] : __( 'no reason given', 'instapipe' ) );
		}
	}
	if ( ! empty( $failed ) ) {
		$instapipe_id = (string) get_post_meta( $post_id, INSTAPIPE_META_POST_ID, true );
		/* translators: 1: instapipe's reasons, per Instagram account, 2: instapipe's post id */
		instapipe_set_state( $post_id, 'failed', sprintf( __( 'Instagram did not publish it: %1$s. instapipe keeps the post; its operator can retry it (instapipe posts retry %2$s).', 'instapipe' ), implode( '; ', $failed ), $instapipe_id ) );
		return;
	}
	instapipe_set_state( $post_id, 'published', __( 'Published on Instagram.', 'instapipe' ) );
}

// ---------------------------------------------------------------- what the owner sees

/** What the posts list, the editor box and the notice show: a label, links and the sentence. */
function instapipe_status_html( $post_id, $with_detail ) {
	list( $state, $detail ) = instapipe_state( $post_id );
	if ( '' === $state ) {
		return '<span class="instapipe-none">—</span>';
	}
	$labels = array(
		'queued'    => __( 'Queued', 'instapipe' ),
		'retrying'  => __( 'Retrying', 'instapipe' ),
		'sent'      => __( 'Sent', 'instapipe' ),
		'published' => __( 'Published', 'instapipe' ),
		'failed'    => __( 'Failed', 'instapipe' ),
		'skipped'   => __( 'Not posted', 'instapipe' ),
	);
	$label  = isset( $labels[ $state ] ) ? $labels[ $state ] : $state;
	$html   = '<strong class="instapipe-state instapipe-' . esc_attr( $state ) . '">' . esc_html( $label ) . '</strong>';
	foreach ( instapipe_accounts( $post_id ) as $account => $a ) {
		if ( 'published' === $a['state'] && '' !== $a['permalink'] ) {
			$html .= '<br><a class="instapipe-permalink" href="' . esc_url( $a['permalink'] ) . '" target="_blank" rel="noopener noreferrer">' . esc_html( $a['permalink'] ) . '</a>';
		}
	}
	if ( $with_detail || in_array( $state, array( 'failed', 'skipped', 'retrying' ), true ) ) {
		$html .= '<br><span class="instapipe-detail">' . esc_html( $detail ) . '</span>';
	}
	return $html;
}

function instapipe_can_resend( $post_id ) {
	list( $state ) = instapipe_state( $post_id );
	$post          = get_post( $post_id );
	// A post instapipe accepted and Instagram refused is instapipe's to retry: sent again, it
	// would only be answered as a duplicate of that post.
	$instagram_failed = ! empty( instapipe_accounts( $post_id ) );
	return $post && 'publish' === $post->post_status && ! instapipe_is_protected( $post ) && in_array( $state, array( 'failed', 'skipped' ), true ) && ! $instagram_failed
		&& current_user_can( 'edit_post', $post_id ) && current_user_can( 'publish_posts' );
}

function instapipe_resend_url( $post_id ) {
	return wp_nonce_url( admin_url( 'admin-post.php?action=instapipe_resend&post=' . (int) $post_id ), 'instapipe_resend_' . (int) $post_id );
}

add_action(
	'admin_init',
	function () {
		foreach ( instapipe_post_types() as $type ) {
			add_filter(
				"manage_{$type}_posts_columns",
				function ( $columns ) {
					$columns['instapipe'] = __( 'Instagram', 'instapipe' );
					return $columns;
				}
			);
			add_action(
				"manage_{$type}_posts_custom_column",
				function ( $column, $post_id ) {
					if ( 'instapipe' === $column ) {
						echo instapipe_status_html( $post_id, false ); // phpcs:ignore WordPress.Security.EscapeOutput -- escaped in instapipe_status_html
					}
				},
				10,
				2
			);
		}
	}
);

add_filter(
	'post_row_actions',
	function ( $actions, $post ) {
		if ( in_array( $post->post_type, instapipe_post_types(), true ) && instapipe_can_resend( $post->ID ) ) {
			$actions['instapipe_resend'] = '<a href="' . esc_url( instapipe_resend_url( $post->ID ) ) . '">' . esc_html__( 'Send to Instagram again', 'instapipe' ) . '</a>';
		}
		return $actions;
	},
	10,
	2
);

add_action(
	'add_meta_boxes',
	function () {
		add_meta_box(
			'instapipe',
			__( 'Instagram (instapipe)', 'instapipe' ),
			function ( $post ) {
				echo '<p>' . instapipe_status_html( $post->ID, true ) . '</p>'; // phpcs:ignore WordPress.Security.EscapeOutput -- escaped in instapipe_status_html
				if ( instapipe_can_resend( $post->ID ) ) {
					echo '<p><a class="button" href="' . esc_url( instapipe_resend_url( $post->ID ) ) . '">' . esc_html__( 'Send to Instagram again', 'instapipe' ) . '</a></p>';
				}
			},
			instapipe_post_types(),
			'side'
		);
	}
);

add_action(
	'admin_post_instapipe_resend',
	function () {
		$post_id = isset( $_GET['post'] ) ? absint( $_GET['post'] ) : 0;
		check_admin_referer( 'instapipe_resend_' . $post_id );
		if ( ! instapipe_can_resend( $post_id ) ) {
			wp_die( esc_html__( 'This post cannot be sent again (it is not published, not failed or skipped, or you may not publish it).', 'instapipe' ), 403 );
		}
		instapipe_resend( $post_id );
		wp_safe_redirect( add_query_arg( 'instapipe_resent', $post_id, wp_get_referer() ? wp_get_referer() : admin_url( 'edit.php' ) ) );
		exit;
	}
);

/**
 * Sends a failed or skipped post again, with a new webhook-id: instapipe took nothing from a
 * refused request, and remembers a skipped one under its id only, so the new id is new to it.
 * (A post instapipe accepted and Instagram refused is not offered: see instapipe_can_resend.)
 */
function instapipe_resend( $post_id ) {
	$post = get_post( $post_id );
	update_post_meta( $post_id, INSTAPIPE_META_RESENDS, (int) get_post_meta( $post_id, INSTAPIPE_META_RESENDS, true ) + 1 );
	instapipe_new_webhook_id( $post );
	update_post_meta( $post_id, INSTAPIPE_META_ATTEMPT, 0 );
	instapipe_set_state( $post_id, 'queued', __( 'Queued again by hand.', 'instapipe' ) );
	instapipe_queue( $post_id );
}

add_action(
	'admin_post_instapipe_dismiss',
	function () {
		$post_id = isset( $_GET['post'] ) ? absint( $_GET['post'] ) : 0;
		check_admin_referer( 'instapipe_dismiss_' . $post_id );
		if ( ! current_user_can( 'edit_post', $post_id ) ) {
			wp_die( esc_html__( 'You may not edit this post.', 'instapipe' ), 403 );
		}
		update_post_meta( $post_id, INSTAPIPE_META_DISMISS, 1 );
		wp_safe_redirect( wp_get_referer() ? wp_get_referer() : admin_url( 'edit.php' ) );
		exit;
	}
);

add_action(
	'admin_notices',
	function () {
		if ( ! current_user_can( 'edit_posts' ) ) {
			return;
		}
		if ( isset( $_GET['instapipe_resent'] ) ) { // phpcs:ignore WordPress.Security.NonceVerification -- display only
			$title = get_the_title( absint( $_GET['instapipe_resent'] ) ); // phpcs:ignore WordPress.Security.NonceVerification
			/* translators: %s: post title */
			echo '<div class="notice notice-success is-dismissible"><p>' . esc_html( sprintf( __( '"%s" is being sent to Instagram again.', 'instapipe' ), $title ) ) . '</p></div>';
		}
		$failed = get_posts(
			array(
				'post_type'        => instapipe_post_types(),
				'post_status'      => 'any',
				'numberposts'      => 5,
				'fields'           => 'ids',
				'suppress_filters' => true,
				'meta_query'       => array( // phpcs:ignore WordPress.DB.SlowDBQuery
					array(
						'key'   => INSTAPIPE_META_STATE,
						'value' => 'failed',
					),
					array(
						'key'     => INSTAPIPE_META_DISMISS,
						'compare' => 'NOT EXISTS',
					),
				),
			)
		);
		$failed = array_filter(
			$failed,
			function ( $id ) {
				return current_user_can( 'edit_post', $id );
			}
		);
		if ( empty( $failed ) ) {
			return;
		}
		echo '<div class="notice notice-error instapipe-notice"><p><strong>' . esc_html__( 'instapipe: these posts did not reach Instagram.', 'instapipe' ) . '</strong></p><ul>';
		foreach ( $failed as $id ) {
			list( , $detail ) = instapipe_state( $id );
			echo '<li><a href="' . esc_url( get_edit_post_link( $id ) ) . '">' . esc_html( get_the_title( $id ) ) . '</a> — ' . esc_html( $detail );
			if ( instapipe_can_resend( $id ) ) {
				echo ' <a href="' . esc_url( instapipe_resend_url( $id ) ) . '">' . esc_html__( 'Send to Instagram again', 'instapipe' ) . '</a>';
			}
			$dismiss = wp_nonce_url( admin_url( 'admin-post.php?action=instapipe_dismiss&post=' . (int) $id ), 'instapipe_dismiss_' . (int) $id );
			echo ' | <a href="' . esc_url( $dismiss ) . '">' . esc_html__( 'Dismiss', 'instapipe' ) . '</a></li>';
		}
		echo '</ul></div>';
	}
);

// ---------------------------------------------------------------- settings page

add_action(
	'admin_init',
	function () {
		register_setting(
			'instapipe',
			INSTAPIPE_OPTION_ENDPOINT,
			array(
				'type'              => 'string',
				'sanitize_callback' => function ( $value ) {
					$value = esc_url_raw( trim( (string) $value ), array( 'https', 'http' ) );
					if ( '' === $value ) {
						return '';
					}
					$problem = instapipe_endpoint_problem( $value, $warning );
					if ( '' !== $problem ) {
						add_settings_error( INSTAPIPE_OPTION_ENDPOINT, 'instapipe_endpoint', $problem );
						return get_option( INSTAPIPE_OPTION_ENDPOINT, '' );
					}
					if ( '' !== $warning ) {
						add_settings_error( INSTAPIPE_OPTION_ENDPOINT, 'instapipe_endpoint_http', $warning, 'warning' );
					}
					return $value;
				},
				'default'           => '',
			)
		);
		register_setting(
			'instapipe',
			INSTAPIPE_OPTION_SECRET,
			array(
				'type'              => 'string',
				'sanitize_callback' => function ( $value ) {
					$value = trim( (string) $value );
					if ( '' === $value ) {
						// Left blank: keep the stored secret (it is never shown again).
						return get_option( INSTAPIPE_OPTION_SECRET, '' );
					}
					if ( null === instapipe_key( $value ) ) {
						add_settings_error( INSTAPIPE_OPTION_SECRET, 'instapipe_secret', __( 'The secret must be whsec_ followed by the base64 of 24 to 64 bytes.', 'instapipe' ) );
						return get_option( INSTAPIPE_OPTION_SECRET, '' );
					}
					return $value;
				},
				'default'           => '',
			)
		);
		register_setting(
			'instapipe',
			INSTAPIPE_OPTION_TEMPLATE,
			array(
				'type'              => 'string',
				'sanitize_callback' => function ( $value ) {
					$value   = trim( sanitize_textarea_field( (string) $value ) );
					$problem = instapipe_template_problem( $value );
					if ( '' !== $problem ) {
						add_settings_error( INSTAPIPE_OPTION_TEMPLATE, 'instapipe_template', $problem );
						return get_option( INSTAPIPE_OPTION_TEMPLATE, '' );
					}
					return $value;
				},
				'default'           => '',
			)
		);
	}
);

add_action(
	'admin_menu',
	function () {
		add_options_page( 'instapipe', 'instapipe', 'manage_options', 'instapipe', 'instapipe_settings_page' );
	}
);

add_action(
	'admin_post_instapipe_test',
	function () {
		if ( ! current_user_can( 'manage_options' ) ) {
			wp_die( esc_html__( 'You may not change the instapipe settings.', 'instapipe' ), 403 );
		}
		check_admin_referer( 'instapipe_test' );
		instapipe_send_test();
		wp_safe_redirect( admin_url( 'options-general.php?page=instapipe' ) );
		exit;
	}
);

/**
 * A signed `instapipe.test` event: instapipe checks the signature, then acknowledges the event
 * without posting anything (200, "skipped"). The answer is kept for the settings page.
 */
function instapipe_send_test() {
	list( $endpoint, $secret ) = instapipe_config();
	$key                       = instapipe_key( $secret );
	$result                    = array(
		'at'          => time(),
		'ok'          => false,
		'code'        => 0,
		'answer'      => '',
		'fingerprint' => instapipe_fingerprint( $endpoint, $secret ),
	);
	if ( '' === $endpoint || null === $key ) {
		$result['answer'] = __( 'Nothing sent: set the endpoint and the signing secret first.', 'instapipe' );
	} else {
		$id        = 'msg_test_' . wp_generate_password( 24, false );
		$timestamp = time();
		$body      = wp_json_encode(
			array(
				'type'      => 'instapipe.test',
				'timestamp' => gmdate( 'c' ),
				// The shape of a post (instapipe reads it before it looks at the type), post 0.
				'data'      => array(
					'site'           => home_url( '/' ),
					'id'             => 0,
					'post_type'      => 'instapipe_test',
					'title'          => 'instapipe connection test',
					'excerpt'        => '',
					'permalink'      => home_url( '/' ),
					'featured_image' => null,
					'categories'     => array(),
					'tags'           => array(),
				),
			)
		);
		$response  = wp_remote_post(
			$endpoint,
			array(
				'timeout'     => 15,
				'redirection' => 0,
				'body'        => $body,
				'headers'     => array(
					'Content-Type'      => 'application/json',
					'webhook-id'        => $id,
					'webhook-timestamp' => (string) $timestamp,
					'webhook-signature' => instapipe_signature( $key, $id, $timestamp, $body ),
				),
			)
		);
		$result['code']   = is_wp_error( $response ) ? 0 : (int) wp_remote_retrieve_response_code( $response );
		$result['ok']     = $result['code'] >= 200 && $result['code'] < 300;
		$result['answer'] = is_wp_error( $response ) ? $response->get_error_message() : mb_substr( (string) wp_remote_retrieve_body( $response ), 0, 500 );
		if ( $result['ok'] ) {
			delete_option( INSTAPIPE_OPTION_BROKEN );
		}
	}
	update_option( INSTAPIPE_OPTION_TEST, $result, false );
	return $result;
}

/** "Ready" needs a successful test with the endpoint and secret in effect, and no refusal since. */
function instapipe_readiness() {
	list( $endpoint, $secret ) = instapipe_config();
	if ( '' === $endpoint || null === instapipe_key( $secret ) ) {
		return array( 'unconfigured', __( 'Not configured: nothing is sent.', 'instapipe' ) );
	}
	$test   = get_option( INSTAPIPE_OPTION_TEST, array() );
	$broken = get_option( INSTAPIPE_OPTION_BROKEN, array() );
	$fingerprint = instapipe_fingerprint( $endpoint, $secret );
	if ( ! empty( $broken['fingerprint'] ) && $broken['fingerprint'] === $fingerprint && ( empty( $test['ok'] ) || $broken['at'] >= $test['at'] ) ) {
		/* translators: %s: instapipe's answer */
		return array( 'broken', sprintf( __( 'Not working: instapipe refused a post (%s). Check the endpoint and the secret, then send a test.', 'instapipe' ), $broken['why'] ) );
	}
	if ( empty( $test ) || $test['fingerprint'] !== $fingerprint ) {
		return array( 'untested', __( 'Not tested: send a test to check the endpoint and the secret.', 'instapipe' ) );
	}
	if ( empty( $test['ok'] ) ) {
		return array( 'broken', __( 'Not working: the last test failed (see its answer below).', 'instapipe' ) );
	}
	return array( 'ready', __( 'Ready: instapipe accepted a signed test request; new posts will be sent.', 'instapipe' ) );
}

function instapipe_settings_page() {
	if ( ! current_user_can( 'manage_options' ) ) {
		return;
	}
	list( , $secret )                 = instapipe_config();
	$fixed                            = defined( 'INSTAPIPE_ENDPOINT' ) || defined( 'INSTAPIPE_SECRET' );
	list( $readiness, $readiness_msg ) = instapipe_readiness();
	$test                             = get_option( INSTAPIPE_OPTION_TEST, array() );
	$last_status                      = get_option( INSTAPIPE_OPTION_LAST_STATUS, array() );
	?>
	<div class="wrap">
		<h1>instapipe</h1>
		<p><?php esc_html_e( 'Each post is sent to instapipe once, right after it is first published; instapipe posts it to Instagram and reports back.', 'instapipe' ); ?></p>
		<div class="notice inline <?php echo 'ready' === $readiness ? 'notice-success' : ( 'broken' === $readiness ? 'notice-error' : 'notice-warning' ); ?>">
			<p id="instapipe-readiness" data-state="<?php echo esc_attr( $readiness ); ?>"><?php echo esc_html( $readiness_msg ); ?></p>
		</div>
		<?php if ( $fixed ) : ?>
			<p><em><?php esc_html_e( 'wp-config.php sets INSTAPIPE_ENDPOINT or INSTAPIPE_SECRET; those values are used.', 'instapipe' ); ?></em></p>
		<?php endif; ?>
		<form method="post" action="options.php">
			<?php settings_fields( 'instapipe' ); ?>
			<table class="form-table" role="presentation">
				<tr>
					<th scope="row"><label for="instapipe_endpoint"><?php esc_html_e( 'Endpoint URL', 'instapipe' ); ?></label></th>
					<td>
						<input name="<?php echo esc_attr( INSTAPIPE_OPTION_ENDPOINT ); ?>" id="instapipe_endpoint" type="url" class="regular-text"
							value="<?php echo esc_attr( get_option( INSTAPIPE_OPTION_ENDPOINT, '' ) ); ?>"
							placeholder="https://…lambda-url…/webhooks/wordpress" />
						<p class="description"><?php esc_html_e( 'https://, or http:// for a local or private-network instapipe.', 'instapipe' ); ?></p>
					</td>
				</tr>
				<tr>
					<th scope="row"><label for="instapipe_secret"><?php esc_html_e( 'Signing secret', 'instapipe' ); ?></label></th>
					<td>
						<input name="<?php echo esc_attr( INSTAPIPE_OPTION_SECRET ); ?>" id="instapipe_secret" type="password" class="regular-text" autocomplete="new-password"
							value="" placeholder="<?php echo '' === $secret ? 'whsec_…' : esc_attr__( 'saved; leave blank to keep it', 'instapipe' ); ?>" />
						<p class="description"><?php esc_html_e( 'The "wordpress" entry of instapipe\'s webhook secrets (whsec_…). It signs the posts sent to instapipe and verifies the status instapipe sends back. It is never shown again.', 'instapipe' ); ?></p>
					</td>
				</tr>
				<tr>
					<th scope="row"><label for="instapipe_caption_template"><?php esc_html_e( 'Caption template', 'instapipe' ); ?></label></th>
					<td>
						<textarea name="<?php echo esc_attr( INSTAPIPE_OPTION_TEMPLATE ); ?>" id="instapipe_caption_template" rows="5" class="large-text code"
							placeholder="<?php echo esc_attr( "{title}\n\n{excerpt}\n\n{link}\n\n{hashtags}" ); ?>"><?php echo esc_textarea( get_option( INSTAPIPE_OPTION_TEMPLATE, '' ) ); ?></textarea>
						<p class="description">
							<?php
							/* translators: %s: the list of placeholders */
							echo esc_html( sprintf( __( 'Optional; blank uses the caption of instapipe\'s route. Placeholders: %s ({{ and }} for literal braces).', 'instapipe' ), '{' . implode( '}, {', INSTAPIPE_PLACEHOLDERS ) . '}' ) );
							?>
						</p>
					</td>
				</tr>
			</table>
			<?php submit_button(); ?>
		</form>

		<h2><?php esc_html_e( 'Connection', 'instapipe' ); ?></h2>
		<form id="instapipe-test" method="post" action="<?php echo esc_url( admin_url( 'admin-post.php' ) ); ?>">
			<input type="hidden" name="action" value="instapipe_test" />
			<?php wp_nonce_field( 'instapipe_test' ); ?>
			<?php submit_button( __( 'Send test', 'instapipe' ), 'secondary', 'instapipe_send_test', false ); ?>
		</form>
		<?php if ( ! empty( $test ) ) : ?>
			<p id="instapipe-test-result">
				<?php
				/* translators: 1: date and time, 2: HTTP status */
				echo esc_html( sprintf( __( 'Last test %1$s: HTTP %2$s. instapipe answered:', 'instapipe' ), wp_date( 'Y-m-d H:i:s', $test['at'] ), $test['code'] ? $test['code'] : '—' ) );
				?>
				<br><code><?php echo esc_html( $test['answer'] ); ?></code>
			</p>
		<?php endif; ?>

		<h2><?php esc_html_e( 'Status back from instapipe', 'instapipe' ); ?></h2>
		<p><?php esc_html_e( 'For the Instagram permalink and any failure to show here, set instapipe\'s status webhook URL (StatusWebhookUrl) to the address below and its secret (StatusWebhookSecret) to the same signing secret:', 'instapipe' ); ?></p>
		<p><code id="instapipe-status-url"><?php echo esc_html( rest_url( INSTAPIPE_REST_NAMESPACE . '/status' ) ); ?></code></p>
		<p>
			<?php
			if ( ! empty( $last_status['at'] ) ) {
				/* translators: 1: event type, 2: date and time */
				echo esc_html( sprintf( __( 'Last verified status webhook: %1$s at %2$s.', 'instapipe' ), $last_status['type'], wp_date( 'Y-m-d H:i:s', $last_status['at'] ) ) );
			} else {
				esc_html_e( 'No status webhook received yet.', 'instapipe' );
			}
			?>
		</p>
	</div>
	<?php
}
